"""Exceptions a user can cause. Each carries a message fit to show as is."""


class LacunaError(Exception):
    """Base of every error the engine raises on purpose."""


class InputError(LacunaError, ValueError):
    """The request itself is wrong: a bad span, an empty text, an unknown sampler."""


class ContextTooLong(InputError):
    """The masked tokens (plus their minimum context) exceed the model's context."""


class ModelLoadError(LacunaError):
    """A model could not be found, is unsupported, or failed to load."""


class OutOfMemory(LacunaError):
    """The device ran out of memory during a run; nothing was changed."""


class Cancelled(LacunaError):
    """The run was stopped by its cancel event before it finished."""
