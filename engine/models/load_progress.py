"""Quiet model loads that still report their progress.

transformers draws tqdm bars on stderr while it loads weights ("Loading
weights: 100%|...|"), on every load. Inside ``engine.load_model`` those bars
are routed to a ``progress(stage, done, total)`` callable instead (or nowhere),
through transformers' tqdm hook (``transformers.utils.logging.set_tqdm_hook``,
transformers >= 5). Only the loading thread is affected: a bar drawn by any
other code keeps its usual behaviour, and warnings and errors still go through
logging untouched.
"""
from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterator

Progress = Callable[[str, int, "int | None"], None]  # (stage, done, total or None), on the loading thread

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


class _ReportingBar:
    """Enough of tqdm's interface for transformers' loading loops: iteration,
    update, close, the context manager; draws nothing."""

    def __init__(self, report: Progress | None, iterable=None, desc: str | None = None,
                 total: int | None = None, **_: object) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                total = None
        self.total, self.n = total, 0
        self.desc = (desc or "Loading").strip().rstrip(":")
        self._report = report
        self._last = -1
        self._emit(force=True)

    def _emit(self, force: bool = False) -> None:
        if self._report is None:
            return
        # about 100 reports per bar at most: a large checkpoint has thousands of tensors
        step = max(1, (self.total or 0) // 100)
        if force or self.n - self._last >= step or (self.total is not None and self.n >= self.total):
            self._last = self.n
            try:
                self._report(self.desc, self.n, self.total)
            except Exception:  # noqa: BLE001 - a progress display must never break a load
                self._report = None

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.n += 1
            self._emit()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int | None = 1) -> None:
        self.n += 1 if n is None else n
        self._emit()

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = (desc or self.desc).strip().rstrip(":")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str):
        # set_postfix, refresh, clear, unpause, ...: nothing to draw
        return lambda *a, **k: None


def _hook(previous):
    def hook(factory, args, kwargs):
        if getattr(_local, "quiet", False):
            # tqdm's positional order: iterable, desc, total
            kwargs = {**dict(zip(("iterable", "desc", "total"), args)), **kwargs}
            return _ReportingBar(getattr(_local, "report", None), **kwargs)
        if previous is not None:
            return previous(factory, args, kwargs)
        return factory(*args, **kwargs)
    return hook


def _install(import_transformers: bool = False) -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        if not import_transformers and "transformers" not in sys.modules:
            # A native family never imports transformers (seconds of start-up);
            # the transformers families call install() before they load.
            return
        try:
            from transformers.utils import logging as hf_logging
        except ImportError:  # no transformers: nothing draws bars
            _installed = True
            return
        set_hook = getattr(hf_logging, "set_tqdm_hook", None)
        if set_hook is not None:
            previous = set_hook(None)
            set_hook(_hook(previous))
        _installed = True


def install() -> None:
    """Put the hook in transformers (importing it): before a transformers family loads."""
    _install(import_transformers=True)


@contextlib.contextmanager
def quiet_load(progress: Progress | None = None) -> Iterator[None]:
    """Within the block, on this thread: transformers' progress bars report to
    ``progress`` and draw nothing."""
    _install()
    before = getattr(_local, "quiet", False), getattr(_local, "report", None)
    _local.quiet, _local.report = True, progress
    try:
        yield
    finally:
        _local.quiet, _local.report = before


def report(progress: Progress | None, stage: str, done: int = 0, total: int | None = None) -> None:
    """Report a stage of a load that has no bar of its own (reading the tokenizer, moving to the GPU)."""
    if progress is not None:
        try:
            progress(stage, done, total)
        except Exception:  # noqa: BLE001 - a progress display must never break a load
            pass
