"""Pulls against the mock Hub: the happy path, resume, faults, and what gets recorded."""
from __future__ import annotations

import hashlib
import json
import os
import threading

import pytest

from lacuna.engine.hub import cache, local_snapshot, records
from lacuna.engine.hub.download import pull
from lacuna.engine.hub.errors import (AccessDenied, Cancelled, DiskSpaceError, EntryNotFound, HubError,
                               IntegrityError, Paused, PickleConsentRequired, RemoteCodeConsentRequired,
                               RepoNotFound)

from .conftest import REPO, fast_options

WEIGHTS = "model.safetensors"


def _collect():
    seen = []
    return seen, seen.append


def test_pull_installs_verified_snapshot_in_hf_layout(tiny_repo, hub, hub_model_files):
    seen, progress = _collect()
    record = pull(REPO, progress=progress, options=fast_options())
    assert record["commit"] == tiny_repo
    folder = local_snapshot(REPO)
    assert folder == cache.snapshot_dir(REPO, tiny_repo)
    repo_dir = folder.parent.parent
    assert repo_dir.name == "models--test-org--tiny-bert"
    assert (repo_dir / "refs" / "main").read_text() == tiny_repo
    # every file is a relative symlink into blobs/ named by its etag
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    assert (folder / WEIGHTS).is_symlink()
    assert (folder / WEIGHTS).resolve() == (repo_dir / "blobs" / sha).resolve()
    assert (folder / WEIGHTS).read_bytes() == hub_model_files[WEIGHTS]
    # the README is not a model file; config and tokenizer are
    assert not (folder / "README.md").exists()
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    # the record says what was installed and verified
    rec = records.get_install(REPO)
    assert rec["verified"] and rec["commit"] == tiny_repo
    assert {f["path"]: f["sha256"] for f in rec["files"]}[WEIGHTS] == sha
    # progress: immutable values, ending installed, with a per-file view
    assert seen[-1].phase == "installed" and seen[-1].done == seen[-1].total > 0
    with pytest.raises(Exception):
        seen[-1].done = 0  # frozen
    assert any(p.phase == "downloading" and 0 < p.done < p.total for p in seen)
    assert not list((repo_dir / "blobs").glob("*.incomplete"))


def test_transformers_and_engine_load_the_pull_offline(tiny_repo, hub, monkeypatch):
    pull(REPO, options=fast_options())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    import transformers

    model = transformers.AutoModelForMaskedLM.from_pretrained(REPO, local_files_only=True)
    assert model.config.model_type == "bert"
    tok = transformers.AutoTokenizer.from_pretrained(REPO, local_files_only=True)
    assert tok.mask_token == "[MASK]"
    try:
        from lacuna.engine import load_model
    except ImportError:
        pytest.skip("lacuna.engine.load_model is not there yet (the lead's engine/models/loader.py)")
    loaded = load_model(REPO, device="cpu", dtype="float32")
    assert loaded is not None


def test_connection_dropped_mid_file_resumes_with_range(tiny_repo, hub, hub_model_files):
    half = len(hub_model_files[WEIGHTS]) // 2
    hub.fault(WEIGHTS, drop_after=half)
    seen, progress = _collect()
    pull(REPO, progress=progress, options=fast_options())
    gets = hub.requests_for(WEIGHTS)
    assert len(gets) == 2
    assert gets[0].range is None and gets[1].range == f"bytes={half}-"
    assert any(p.phase == "retrying" for p in seen)
    assert records.get_install(REPO)["verified"]


def test_stalled_server_is_detected_and_retried(tiny_repo, hub, hub_model_files):
    cut = len(hub_model_files[WEIGHTS]) // 3
    hub.fault(WEIGHTS, hold_after=cut)
    seen, progress = _collect()
    pull(REPO, progress=progress, options=fast_options(stall_timeout=0.4))
    gets = hub.requests_for(WEIGHTS)
    assert [g.range for g in gets] == [None, f"bytes={cut}-"]
    assert any("stalled" in p.message for p in seen if p.phase == "retrying")
    assert local_snapshot(REPO) is not None


def test_retries_are_bounded(tiny_repo, hub):
    hub.fault(WEIGHTS, hold_after=0, times=-1)
    with pytest.raises(HubError, match="failed after 2 retries"):
        pull(REPO, options=fast_options(stall_timeout=0.2, max_retries=2))
    assert len(hub.requests_for(WEIGHTS)) == 3
    assert records.get_install(REPO) is None and local_snapshot(REPO) is None


def test_corrupted_bytes_are_detected_deleted_and_not_installed(tiny_repo, hub, hub_model_files):
    hub.fault(WEIGHTS, corrupt=True)
    with pytest.raises(IntegrityError, match="deleted the bad file"):
        pull(REPO, options=fast_options())
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    assert not cache.blob_path(REPO, sha).exists()
    assert not cache.partial_path(REPO, sha).exists()
    assert records.get_install(REPO) is None
    assert local_snapshot(REPO) is None
    assert not cache.snapshot_dir(REPO, tiny_repo).exists()
    # the next pull, with an honest server, completes
    pull(REPO, options=fast_options())
    assert local_snapshot(REPO) is not None


def test_corrupt_file_already_in_cache_is_replaced(tiny_repo, hub, hub_model_files):
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    blob = cache.blob_path(REPO, sha)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"\0" * len(hub_model_files[WEIGHTS]))
    seen, progress = _collect()
    pull(REPO, progress=progress, options=fast_options())
    assert blob.read_bytes() == hub_model_files[WEIGHTS]
    assert any("corrupt" in p.message for p in seen)


def test_files_already_in_the_hf_cache_are_reused(tiny_repo, hub, tmp_path, monkeypatch):
    pull(REPO, options=fast_options())
    # a second Lacuna (fresh user data) on the same HF cache downloads no file again
    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "other-data"))
    hub.clear_log()
    seen, progress = _collect()
    pull(REPO, progress=progress, options=fast_options())
    assert hub.file_requests() == []
    assert {f.state for f in seen[-1].files} == {"cached"}


def test_missing_repo_file_and_revision_have_clear_errors(tiny_repo, hub):
    with pytest.raises(RepoNotFound, match="not found on the Hub"):
        pull("nobody/nothing", options=fast_options())
    with pytest.raises(EntryNotFound, match="revision nope"):
        pull(REPO, revision="nope", options=fast_options())
    hub.fault("tokenizer.json", status=404, error_code="EntryNotFound")
    with pytest.raises(EntryNotFound, match="tokenizer.json"):
        pull(REPO, options=fast_options())
    assert records.get_install(REPO) is None


def test_gated_repo_points_to_the_token(hub, hub_model_files, monkeypatch):
    hub.add_repo("gated-org/tiny", hub_model_files, gated=True)
    with pytest.raises(AccessDenied, match="huggingface-cli login"):
        pull("gated-org/tiny", options=fast_options())
    monkeypatch.setenv("LACUNA_HF_TOKEN_ENDPOINTS", hub.url)  # the user says the token belongs there
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(AccessDenied, match="token has no access"):
        pull("gated-org/tiny", options=fast_options())
    hub.repos["gated-org/tiny"].authorized_tokens.add("hf_good")
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    pull("gated-org/tiny", options=fast_options())
    # the token went to the Hub's resolve route, never to the CDN it redirects to
    assert all(r.authorization is None for r in hub.file_requests() if r.path.startswith("/lfs-cdn/"))
    assert any(r.authorization == "Bearer hf_good" for r in hub.file_requests() if "/resolve/" in r.path)


def test_too_little_disk_space_is_refused_before_any_download(tiny_repo, hub, monkeypatch):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=10_000))
    with pytest.raises(DiskSpaceError, match="not enough disk space"):
        pull(REPO, options=fast_options())
    assert hub.file_requests() == []
    assert records.get_install(REPO) is None


def test_pause_keeps_partial_and_resume_continues(tiny_repo, hub, hub_model_files):
    pause = threading.Event()
    size = len(hub_model_files[WEIGHTS])

    def progress(p):
        for f in p.files:
            if f.path == WEIGHTS and f.done >= size // 2:
                pause.set()

    with pytest.raises(Paused):
        pull(REPO, progress=progress, pause=pause, options=fast_options())
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    partial = cache.partial_path(REPO, sha)
    have = partial.stat().st_size
    assert size // 2 <= have < size
    assert records.get_install(REPO) is None
    hub.clear_log()
    pull(REPO, options=fast_options())
    assert [r.range for r in hub.requests_for(WEIGHTS)] == [f"bytes={have}-"]
    assert not partial.exists() and local_snapshot(REPO) is not None


def test_cancel_deletes_partials_and_installs_nothing(tiny_repo, hub, hub_model_files):
    cancel = threading.Event()

    def progress(p):
        if any(f.path == WEIGHTS and f.done > 0 for f in p.files):
            cancel.set()

    seen = []
    with pytest.raises(Cancelled):
        pull(REPO, progress=lambda p: (seen.append(p), progress(p)), cancel=cancel, options=fast_options())
    assert seen[-1].phase == "cancelled"
    assert not list((cache.paths.repo_dir(REPO) / "blobs").glob("*.incomplete"))
    assert local_snapshot(REPO) is None and records.get_install(REPO) is None


def test_install_is_pinned_to_the_commit_it_resolved(tiny_repo, hub, hub_model_files):
    pull(REPO, options=fast_options())
    newer = dict(hub_model_files, **{"config.json": hub_model_files["config.json"] + b"\n"})
    new_commit = hub.add_repo(REPO, newer)
    assert new_commit != tiny_repo
    # offline, the recorded commit is what loads
    assert local_snapshot(REPO).name == tiny_repo
    record = pull(REPO, options=fast_options())
    assert record["commit"] == new_commit and local_snapshot(REPO).name == new_commit


def test_pull_by_explicit_commit_writes_no_ref(tiny_repo, hub):
    pull(REPO, revision=tiny_repo, options=fast_options())
    assert local_snapshot(REPO).name == tiny_repo
    assert not (cache.paths.repo_dir(REPO) / "refs" / tiny_repo).exists()


def test_remote_code_needs_consent_per_commit(hub, hub_model_files):
    config = json.loads(hub_model_files["config.json"])
    config["auto_map"] = {"AutoModelForMaskedLM": "modeling_custom.CustomModel"}
    files = dict(hub_model_files, **{"config.json": json.dumps(config).encode(),
                                     "modeling_custom.py": b"print('custom code')\n"})
    commit = hub.add_repo("user-org/custom", files)
    with pytest.raises(RemoteCodeConsentRequired) as info:
        pull("user-org/custom", options=fast_options())
    err = info.value
    assert err.commit == commit
    assert err.files == [{"path": "modeling_custom.py", "size": len(files["modeling_custom.py"]),
                          "sha256": hashlib.sha256(files["modeling_custom.py"]).hexdigest()}]
    assert records.get_install("user-org/custom") is None
    # consent given (the GUI's dialog, or the CLI's --trust-remote-code) -> installed, remembered
    record = pull("user-org/custom", options=fast_options(trust_remote_code=True))
    assert record["remote_code"] == err.files and records.has_consent("user-org/custom", commit)
    pull("user-org/custom", options=fast_options())  # same commit: no question
    # a new commit asks again
    hub.add_repo("user-org/custom", dict(files, **{"modeling_custom.py": b"print('changed')\n"}))
    with pytest.raises(RemoteCodeConsentRequired):
        pull("user-org/custom", options=fast_options())


def test_catalog_families_do_not_fetch_code(hub, hub_model_files, tmp_path, monkeypatch):
    """Catalog entries load through the engine's own code: .py files are never fetched."""
    config = json.loads(hub_model_files["config.json"])
    config["auto_map"] = {"AutoModel": "modeling_llada.LLaDAModelLM"}
    files = dict(hub_model_files, **{"config.json": json.dumps(config).encode(),
                                     "modeling_llada.py": b"# code\n"})
    hub.add_repo("GSAI-ML/LLaDA-8B-Instruct", files)
    record = pull("llada-8b-instruct", options=fast_options())
    assert record["remote_code"] == [] and hub.requests_for("modeling_llada.py") == []
    from lacuna.engine.hub.manage import model_info

    info = model_info("llada-8b-instruct")
    assert info.status == "installed" and info.loadable  # LLaDA loads natively, without its code


def test_pickle_only_repo_needs_agreement(hub, hub_model_files):
    files = {k: v for k, v in hub_model_files.items() if k != WEIGHTS}
    files["pytorch_model.bin"] = b"\x80\x04pickled" * 100
    hub.add_repo("user-org/pickles", files)
    with pytest.raises(PickleConsentRequired, match="pytorch_model.bin"):
        pull("user-org/pickles", options=fast_options())
    assert hub.file_requests() == []
    record = pull("user-org/pickles", options=fast_options(allow_pickle=True))
    assert record["pickle"] and any(f["path"] == "pytorch_model.bin" for f in record["files"])


def test_safetensors_preferred_over_pickles(hub, hub_model_files):
    hub.add_repo("user-org/both", dict(hub_model_files, **{"pytorch_model.bin": b"pickle"}))
    record = pull("user-org/both", options=fast_options())
    assert "pytorch_model.bin" not in {f["path"] for f in record["files"]}
    assert hub.requests_for("pytorch_model.bin") == []


def test_offline_env_refuses_pull_without_touching_the_network(tiny_repo, hub, monkeypatch):
    from lacuna.engine.hub.errors import OfflineError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError):
        pull(REPO, options=fast_options())
    assert hub.log == []


def test_stale_partials_are_cleaned(tiny_repo, hub):
    blobs = cache.paths.repo_dir(REPO) / "blobs"
    blobs.mkdir(parents=True)
    old = blobs / ("a" * 64 + cache.PARTIAL_SUFFIX)
    fresh = blobs / ("b" * 64 + cache.PARTIAL_SUFFIX)
    done_blob = blobs / ("c" * 64)
    done_partial = blobs / ("c" * 64 + cache.PARTIAL_SUFFIX)
    hf_orphan = blobs / ("d" * 64 + ".f00.incomplete")
    for f in (old, fresh, done_blob, done_partial, hf_orphan):
        f.write_bytes(b"x")
    ten_days_ago = os.path.getmtime(old) - 10 * 86400
    os.utime(old, (ten_days_ago, ten_days_ago))
    os.utime(hf_orphan, (ten_days_ago, ten_days_ago))
    removed = set(cache.clean_stale_partials())
    assert removed == {old, done_partial, hf_orphan}
    assert fresh.exists() and done_blob.exists()


def test_bundled_and_bad_names_are_bad_input(hub):
    from lacuna.engine.errors import InputError

    with pytest.raises(InputError):
        pull("starter")
    with pytest.raises(InputError):
        pull("not a repo id")


def test_pause_interrupts_a_quiet_connection_at_once(tiny_repo, hub, hub_model_files):
    """Pause does not wait for the stall timeout: the blocked read is woken up."""
    import time

    hold = hub.fault(WEIGHTS, hold_after=len(hub_model_files[WEIGHTS]) // 2)
    pause = threading.Event()
    threading.Thread(target=lambda: (hold.held.wait(30), pause.set()), daemon=True).start()
    start = time.monotonic()
    with pytest.raises(Paused):
        pull(REPO, pause=pause, options=fast_options(stall_timeout=30))
    assert time.monotonic() - start < 10
    hold.release.set()
    pull(REPO, options=fast_options())
    assert local_snapshot(REPO) is not None


def test_pulling_an_installed_commit_again_fetches_nothing(tiny_repo, hub):
    pull(REPO, options=fast_options())
    hub.clear_log()
    seen, progress = _collect()
    record = pull(REPO, progress=progress, options=fast_options())
    assert record["commit"] == tiny_repo and hub.file_requests() == []
    assert seen[-1].phase == "installed" and "already installed" in seen[-1].message


def test_server_ignoring_range_then_dropping_still_verifies(tiny_repo, hub, hub_model_files):
    """A resume answered with 200 (whole file) restarts the file; a drop after that resumes again."""
    size = len(hub_model_files[WEIGHTS])
    pause = threading.Event()

    def progress(p):
        if any(f.path == WEIGHTS and f.done >= size // 2 for f in p.files):
            pause.set()

    with pytest.raises(Paused):
        pull(REPO, progress=progress, pause=pause, options=fast_options())
    hub.fault(WEIGHTS, ignore_range=True, drop_after=size // 4)
    hub.clear_log()
    record = pull(REPO, options=fast_options())
    ranges = [r.range for r in hub.requests_for(WEIGHTS)]
    assert len(ranges) == 2 and ranges[0] is not None and ranges[1] == f"bytes={size // 4}-"
    assert record["verified"]
    assert (local_snapshot(REPO) / WEIGHTS).read_bytes() == hub_model_files[WEIGHTS]


def test_hub_api_hiccups_are_retried_and_an_unreachable_hub_is_offline(tiny_repo, hub, monkeypatch):
    import functools

    from lacuna.engine.hub import hubapi
    from lacuna.engine.hub.errors import OfflineError

    monkeypatch.setattr(hubapi, "get_json", functools.partial(hubapi.get_json, backoff=0.01))
    real_open = hubapi.open_url
    api_calls = []

    def flaky(url, **kw):
        if "/api/" in url:
            api_calls.append(url)
            if len(api_calls) == 1:
                raise hubapi.TransientError("the Hub answered HTTP 503")
        return real_open(url, **kw)

    monkeypatch.setattr(hubapi, "open_url", flaky)
    pull(REPO, options=fast_options())
    assert records.get_install(REPO)["verified"] and len(api_calls) == 3  # revision twice, tree once
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(OfflineError, match="could not be reached"):
        pull("other/repo", options=fast_options())
