"""Two processes share one cache, and a damaged install is repaired by pulling again.

A running pull holds each blob's lock (the one huggingface_hub takes too) while
it writes the blob's partial file. Cancel, Discard, `models rm` and the stale
sweep in another process used to delete that partial, and the first process
then failed with FileNotFoundError after downloading everything. An installed
model whose weights were cut short was reported "installed and verified" by
a second pull that fetched nothing, while infill failed or ran on them.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lacuna.engine import ModelLoadError, load_model
from lacuna.engine.hub import cache, records
from lacuna.engine.hub.download import discard_partials, pull
from lacuna.engine.hub.manage import remove

from .conftest import REPO, fast_options

WEIGHTS = "model.safetensors"
ROOT = Path(__file__).resolve().parents[3]


def _other_process(code: str) -> str:
    """Run ``code`` in a fresh interpreter with this test's cache and data folder."""
    env = {k: v for k, v in os.environ.items()}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _held_pull(hub, hub_model_files):
    """A pull in a thread, held by the server halfway through the weights (partial on disk, lock held)."""
    hold = hub.fault(WEIGHTS, hold_after=len(hub_model_files[WEIGHTS]) // 2)
    outcome: dict = {}
    written = threading.Event()  # a progress value is sent after its bytes are flushed to the partial

    def progress(p):
        if any(f.path == WEIGHTS and f.done > 0 and f.state == "downloading" for f in p.files):
            written.set()

    def run():
        try:
            outcome["record"] = pull(REPO, progress=progress, options=fast_options(stall_timeout=30))
        except Exception as exc:  # noqa: BLE001 - the test asserts there was none
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert hold.held.wait(30) and written.wait(30)
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    partial = cache.partial_path(REPO, sha)
    assert partial.exists()
    return hold, thread, outcome, partial


@pytest.mark.parametrize("action", [
    "from engine.hub.download import discard_partials; discard_partials({repo!r})",
    "from engine.hub import cache; cache.clean_stale_partials(max_age_days=0, repo={repo!r})",
])
def test_another_process_leaves_a_running_pulls_partial_alone(tiny_repo, hub, hub_model_files, action):
    hold, thread, outcome, partial = _held_pull(hub, hub_model_files)
    try:
        _other_process(action.format(repo=REPO))
        assert partial.exists(), "the running pull's partial file was deleted"
    finally:
        hold.release.set()
        thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["record"]["verified"] and (cache.snapshot_dir(REPO, tiny_repo) / WEIGHTS).is_file()


def test_discard_in_this_process_keeps_a_running_partial_and_frees_the_idle_ones(tiny_repo, hub, hub_model_files):
    blobs = cache.paths.repo_dir(REPO) / "blobs"
    hold, thread, outcome, partial = _held_pull(hub, hub_model_files)
    idle = blobs / ("a" * 64 + cache.PARTIAL_SUFFIX)  # a paused pull's leftover: nobody holds it
    idle.write_bytes(b"x" * 1000)
    try:
        assert discard_partials(REPO) == 1000
        assert partial.exists() and not idle.exists()
    finally:
        hold.release.set()
        thread.join(60)
    assert "error" not in outcome


def _blob(hub_model_files, name=WEIGHTS):
    return cache.blob_path(REPO, hashlib.sha256(hub_model_files[name]).hexdigest())


@pytest.mark.parametrize("damage", ["cut to half", "same size, one byte flipped", "deleted"])
def test_pulling_a_damaged_install_repairs_it(tiny_repo, hub, hub_model_files, damage):
    pull(REPO, options=fast_options())
    blob = _blob(hub_model_files)
    data = blob.read_bytes()
    if damage == "cut to half":
        blob.write_bytes(data[: len(data) // 2])
    elif damage == "deleted":
        blob.unlink()
    else:
        blob.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
        stamp = json.dumps(records.get_install(REPO)["files"])
        assert '"mtime_ns"' in stamp  # the write moved the stamp past the recorded one
    said = "not downloaded" if damage == "deleted" else r"model\.safetensors changed since the download was verified"
    with pytest.raises(ModelLoadError, match=said + r".*models pull"):
        load_model(REPO, device="cpu")
    hub.clear_log()
    seen = []
    record = pull(REPO, progress=seen.append, options=fast_options())
    assert record["verified"] and blob.read_bytes() == data
    assert [r.path for r in hub.file_requests() if r.path.endswith(WEIGHTS)], "the weights were fetched again"
    assert any("checking and repairing" in p.message for p in seen)
    load_model(REPO, device="cpu")  # loads again


def test_an_unchanged_install_is_still_not_fetched_again(tiny_repo, hub):
    pull(REPO, options=fast_options())
    os.utime(cache.snapshot_dir(REPO, tiny_repo))  # touching the snapshot folder is not a change to a blob
    hub.clear_log()
    pull(REPO, options=fast_options())
    assert hub.file_requests() == []


def test_models_rm_during_a_pull_elsewhere_refuses_in_one_sentence(tiny_repo, hub, hub_model_files):
    hold, thread, outcome, partial = _held_pull(hub, hub_model_files)
    try:
        out = _other_process(
            "from engine.hub.manage import remove\n"
            "try:\n    remove(%r)\nexcept Exception as exc:\n    print(type(exc).__name__, exc)" % REPO)
    finally:
        hold.release.set()
        thread.join(60)
    assert out.startswith("InputError") and "being downloaded right now" in out and out.count("\n") == 1
    assert outcome["record"]["verified"]


def test_a_blob_removed_by_another_program_before_linking_is_fetched_again(tiny_repo, hub, hub_model_files):
    removed = []

    def progress(p):
        if p.message == "linking the snapshot" and not removed:  # e.g. a cache cleaner, at the worst moment
            cache.blob_path(REPO, hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()).unlink()
            removed.append(WEIGHTS)

    record = pull(REPO, progress=progress, options=fast_options())
    assert removed and record["verified"]
    assert (cache.snapshot_dir(REPO, tiny_repo) / WEIGHTS).read_bytes() == hub_model_files[WEIGHTS]


@pytest.mark.parametrize("damage", ["a cut copy in place of the link", "a link to another file"])
def test_a_snapshot_entry_that_no_longer_is_its_blob_is_caught_and_repaired(tiny_repo, hub, hub_model_files, tmp_path,
                                                                           damage):
    """The loader reads the snapshot entry, not the blob: a reviewer replaced a shard's symlink by a
    1000-byte copy and verify and pull both said all was well while infill failed."""
    pull(REPO, options=fast_options())
    entry = cache.snapshot_dir(REPO, tiny_repo) / WEIGHTS
    entry.unlink()
    if damage.startswith("a cut"):
        entry.write_bytes(hub_model_files[WEIGHTS][:1000])
    else:
        other = tmp_path / "other.safetensors"
        other.write_bytes(hub_model_files[WEIGHTS])
        os.symlink(other, entry)
    with pytest.raises(ModelLoadError, match=r"model\.safetensors changed since the download was verified"):
        load_model(REPO, device="cpu")
    record = pull(REPO, options=fast_options())
    assert record["verified"] and entry.is_symlink() and entry.read_bytes() == hub_model_files[WEIGHTS]
    load_model(REPO, device="cpu")


def test_verify_relinks_a_snapshot_entry_that_is_not_its_blob(tiny_repo, hub, hub_model_files):
    from lacuna.engine.hub.manage import verify

    pull(REPO, options=fast_options())
    entry = cache.snapshot_dir(REPO, tiny_repo) / WEIGHTS
    entry.unlink()
    entry.write_bytes(b"x" * 1000)
    report = verify(REPO)
    assert report.ok and entry.is_symlink() and entry.read_bytes() == hub_model_files[WEIGHTS]
