"""Where the application keeps its own files (platformdirs; overridable for tests)."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def state_dir() -> Path:
    """user_state_dir("lacuna"), or $LACUNA_STATE_DIR when set."""
    override = os.environ.get("LACUNA_STATE_DIR")
    return Path(override) if override else Path(platformdirs.user_state_dir("lacuna"))


def autosave_dir() -> Path:
    return state_dir() / "autosave"


def save_locks_dir() -> Path:
    """Where every Lacuna window and process takes the lock of a file it saves."""
    return state_dir() / "locks"
