"""The mock Hub and an isolated HF cache + Lacuna data folder for every test.

HF_ENDPOINT and HF_HOME are set here, at import, before huggingface_hub is
imported by any test of this folder: huggingface_hub reads them at import time.
Lacuna's own code reads them when called, and each test gets a fresh cache
(HF_HUB_CACHE, also patched into huggingface_hub.constants for transformers)
and a fresh user data folder (LACUNA_DATA_DIR).
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

from .mockhub import MockHub

HUB = MockHub()
_HOME = tempfile.mkdtemp(prefix="lacuna-hf-home-")
atexit.register(shutil.rmtree, _HOME, True)
os.environ["HF_ENDPOINT"] = HUB.url
os.environ["HF_HOME"] = _HOME
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.pop("HF_TOKEN", None)

import pytest  # noqa: E402

from tests.support.tiny import build_tiny_bert  # noqa: E402

REPO = "test-org/tiny-bert"


@pytest.fixture(scope="session")
def hub_model_files(tmp_path_factory) -> dict[str, bytes]:
    """The files of a tiny BertForMaskedLM + tokenizer, as a Hub repo holds them (safetensors).

    The weights are padded to a few hundred KB (an extra unused tensor) so that a
    download takes many chunks and can be interrupted in the middle.
    """
    import torch
    from safetensors.torch import load_file, save_file

    folder = build_tiny_bert(tmp_path_factory.mktemp("hub-tiny-bert"))
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    tensors["lacuna_test_padding"] = torch.zeros(96 * 1024, dtype=torch.float32)
    save_file(tensors, weights, metadata={"format": "pt"})
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files["README.md"] = b"tiny test model\n"
    return files


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """The mock Hub, emptied, with faults cleared; an isolated cache and data folder."""
    HUB.reset()
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "lacuna-data"))
    monkeypatch.setenv("HF_ENDPOINT", HUB.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    from lacuna.engine.hub import store

    store.forget_ignored()
    yield HUB
    HUB.release_all()
    store.forget_ignored()


@pytest.fixture
def tiny_repo(hub, hub_model_files):
    """The tiny model published on the mock Hub as REPO; returns its commit."""
    return hub.add_repo(REPO, hub_model_files)


def fast_options(**changes):
    from lacuna.engine.hub.download import PullOptions

    base = dict(stall_timeout=0.5, max_retries=3, backoff_base=0.01, backoff_max=0.05,
                chunk_size=16 * 1024, progress_interval=0.0, margin_bytes=0)
    base.update(changes)
    return PullOptions(**base)


def tree_state(root, skip=()) -> dict:
    """Every entry under ``root`` (links not followed) with its kind, size, mtime and link target."""
    import stat
    from pathlib import Path

    root = Path(root)
    skip = {Path(p) for p in skip}
    state = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [n for n in dirnames if here / n not in skip]
        for name in dirnames + filenames:
            entry = here / name
            st = entry.lstat()
            state[str(entry.relative_to(root))] = (
                stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns,
                os.readlink(entry) if entry.is_symlink() else None)
    return state


@pytest.fixture
def outside(hub, tmp_path):
    """A folder beside the test's cache holding a victim file.

    At teardown the test fails if anything under tmp_path outside the cache
    (hf-cache) and the user data folder changed: created, deleted, written or linked.
    """
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "victim.txt").write_text("keep me\n")
    skip = (tmp_path / "hf-cache", tmp_path / "lacuna-data")
    before = tree_state(tmp_path, skip)
    yield folder
    assert tree_state(tmp_path, skip) == before, "something outside the cache changed"
    assert (folder / "victim.txt").read_text() == "keep me\n"
