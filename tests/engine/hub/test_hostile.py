"""A hostile or broken mirror (HF_ENDPOINT) against the downloader (issue 9).

Every test here runs with the ``outside`` fixture: a folder beside the cache
with a victim file, and a check at teardown that nothing outside the cache and
the user data folder was created, deleted, written or linked.
"""
from __future__ import annotations

import json
import os
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lacuna.engine.errors import InputError
from lacuna.engine.hub import cache, hubapi, local_snapshot, records, validate
from lacuna.engine.hub.download import RemoteFile, body_start, check_hashes, hash_file, pull
from lacuna.engine.hub.errors import Cancelled, HubError, OfflineError, Paused

from .conftest import REPO, fast_options
from .mockhub import MockHub

EVIL = "evil-org/tiny"
SMALL = {
    "config.json": b'{"model_type": "bert"}\n',
    "tokenizer.json": b"{}\n",
    "model.safetensors": bytes(range(256)) * 64,
}
WEIGHTS = "model.safetensors"


@pytest.fixture
def evil(hub, outside):
    hub.add_repo(EVIL, SMALL)
    return hub


def _patch(hub, path: str, **changes):
    """Rewrite the tree entry of ``path`` (a None value deletes the key)."""
    def patch(items):
        for item in items:
            if item["path"] == path:
                for key, value in changes.items():
                    if value is None:
                        item.pop(key, None)
                    else:
                        item[key] = value
        return items

    hub.tree_patch[EVIL] = patch


def _add_entry(hub, entry: dict):
    hub.tree_patch[EVIL] = lambda items: items + [entry]


def _refused(match: str, exc=HubError, name: str = EVIL, **kw) -> str:
    with pytest.raises(exc, match=match) as info:
        pull(name, options=fast_options(), **kw)
    message = str(info.value)
    assert "\n" not in message and name in message, message
    assert records.get_install(name) is None and local_snapshot(name) is None
    return message


# 1. every value the server sends is checked before it names a path ---------------------

def test_lfs_oid_that_is_a_path_is_refused_and_the_victim_kept(evil, outside):
    """Was: the "cached copy was corrupt" branch deleted ../../../outside/victim.txt, leaving a .lock."""
    _patch(evil, WEIGHTS, lfs={"oid": "../../../outside/victim.txt", "size": 16384, "pointerSize": 130})
    message = _refused("invalid sha256")
    assert "../../../outside/victim.txt" in message


def test_git_oid_that_is_a_path_is_refused_and_nothing_written(evil, outside):
    """Was: config.json written to ../../../outside/written.json and the model marked installed, verified."""
    _patch(evil, "config.json", oid="../../../outside/written.json")
    _refused("invalid git id")
    assert not (outside / "written.json").exists()


def test_non_hex_commit_is_refused_before_any_folder_is_made(evil, outside, tmp_path):
    """Was: a 40-character commit with ../ put the snapshot's links outside the cache."""
    evil.revision_sha[EVIL] = ("../" * 14)[:40]
    _refused("invalid commit id")
    assert not (tmp_path / "hf-cache" / "models--evil-org--tiny" / "snapshots").exists()
    assert not evil.file_requests(), "no file was asked for"


@pytest.mark.parametrize("sha", ["A" * 40, "a" * 39, "a" * 41, "g" * 40, 12345, None, ["a" * 40], "a" * 40 + "\n"])
def test_every_malformed_commit_is_refused(evil, outside, sha):
    evil.revision_sha[EVIL] = sha
    _refused("commit")


@pytest.mark.parametrize("path", [
    "../config.json", "a/../../config.json", "..", "/abs/config.json", "ABSOLUTE", "..\\..\\config.json",
    "dir\\config.json", "C:/config.json", "C:config.json", "c:", "conf\x00ig.json", "", "./config.json",
    "a//config.json", "a/./config.json", "a/", "a/b:c.json", 7, None,
])
def test_unsafe_tree_paths_are_refused(evil, outside, path):
    if path == "ABSOLUTE":
        path = str(outside / "absolute.json")
    _add_entry(evil, {"type": "file", "path": path, "size": 3, "oid": "a" * 40})
    _refused("path")


@pytest.mark.parametrize("field, value, match", [
    ("oid", None, "invalid git id"), ("oid", "", "invalid git id"), ("oid", "a" * 39, "invalid git id"),
    ("oid", "F" * 40, "invalid git id"), ("size", -1, "invalid size"), ("size", "12", "invalid size"),
    ("size", 1 << 60, "invalid size"), ("size", True, "invalid size"), ("lfs", "yes", "LFS"),
])
def test_malformed_tree_fields_are_refused(evil, outside, field, value, match):
    _patch(evil, "config.json", **{field: value})  # None: the field is left out
    _refused(match)


@pytest.mark.parametrize("oid", ["a" * 63, "a" * 65, "Z" * 64, None, 5])
def test_malformed_lfs_oids_are_refused(evil, outside, oid):
    _patch(evil, WEIGHTS, lfs={"oid": oid, "size": 16384, "pointerSize": 130})
    _refused("invalid sha256")


@pytest.mark.parametrize("revision", [
    "../../../outside/x", "/etc/passwd", "a/../b", "main/", "a//b", ".hidden", "x.lock", "ma in", "a\\b",
    "C:x", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a@{1}", "refs/pr/x", "refs/pr/0", "main\n", "\x00",
])
def test_user_revisions_that_are_not_refs_are_refused_before_any_request(evil, outside, revision):
    """Was: --revision ../../../outside/x made the ref writer create a file outside the cache."""
    with pytest.raises(InputError, match="is not a branch, tag, refs/pr/N or commit") as info:
        pull(EVIL, revision, options=fast_options())
    assert "\n" not in str(info.value) and EVIL in str(info.value)
    assert evil.log == [] and records.get_install(EVIL) is None


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/12", "feature/x", "a" * 40, "release-2024.1"])
def test_real_ref_names_are_accepted(revision):
    assert validate.revision(revision, EVIL) == revision


def test_a_snapshot_folder_linked_elsewhere_is_not_followed(hub, outside, tmp_path):
    """The resolved path decides: a folder in the snapshot that links outside cannot receive files."""
    commit = "c" * 40
    blob = cache.blob_path(EVIL, "b" * 40)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"{}")
    snap = cache.snapshot_dir(EVIL, commit)
    snap.mkdir(parents=True)
    (snap / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(HubError, match="leads outside"):
        cache.link_into_snapshot(EVIL, commit, "sub/config.json", "b" * 40)
    assert cache.link_into_snapshot(EVIL, commit, "config.json", "b" * 40).read_bytes() == b"{}"
    with pytest.raises(HubError, match="blob name"):
        cache.link_into_snapshot(EVIL, commit, "x.json", "../../../outside/victim.txt")
    with pytest.raises(HubError, match="commit"):
        cache.write_ref(EVIL, "main", "../../outside")


def test_a_forged_install_record_cannot_delete_or_link_outside(hub, outside, monkeypatch):
    """installs.json is user data: a record naming paths outside the cache is ignored, and said so."""
    from lacuna.engine.hub import manage, store

    store.forget_ignored()
    data_dir = os.environ["LACUNA_DATA_DIR"]
    os.makedirs(data_dir)
    forged = {"repo": EVIL, "commit": "../../../outside", "verified": True,
              "files": [{"path": "x", "size": 7, "blob": "../../../outside/victim.txt", "sha256": "0"}]}
    with open(os.path.join(data_dir, "installs.json"), "w") as fh:
        json.dump({"models": {EVIL: forged}}, fh)
    assert records.get_install(EVIL) is None
    assert any("installs.json" in line and "broken record" in line for line in store.ignored())
    with pytest.raises(InputError, match="not installed"):
        manage.verify(EVIL)
    with pytest.raises(InputError, match="not installed"):
        manage.remove(EVIL)
    assert all(m.id != EVIL for m in manage.list_models())


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="./\\:aC\x00~", max_size=12))
def test_property_accepted_paths_stay_inside(path):
    """Any path the check accepts, joined to a folder and normalised, stays strictly inside it."""
    if validate.path_problem(path) is None:
        joined = os.path.normpath(os.path.join("/cache/snap", path))
        assert joined.startswith("/cache/snap/") and ".." not in path.split("/") and "\\" not in path


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="./\\:am~^@{\n", max_size=12))
def test_property_accepted_revisions_stay_inside_refs(revision):
    try:
        validate.revision(revision, EVIL)
    except InputError:
        return
    joined = os.path.normpath(os.path.join("/cache/refs", revision))
    assert joined.startswith("/cache/refs/") and not revision.startswith("/") and ".." not in revision


# 2. verified means verified -----------------------------------------------------------

def test_small_file_with_wrong_git_hash_is_not_installed(evil, outside):
    config = SMALL["config.json"]
    _patch(evil, "config.json", oid=hashlib_git(config + b" "))
    _refused("does not match the Hub's hash")


def test_a_file_with_no_usable_hash_is_never_verified(tmp_path):
    data = tmp_path / "f"
    data.write_bytes(b"abc")
    for rf in (RemoteFile("f", 3, "", None), RemoteFile("f", 3, "x" * 40, None),
               RemoteFile("f", 3, "", "not-a-sha256")):
        ok, _ = check_hashes(rf, hash_file(data, 3))
        assert not ok, rf


def test_a_record_not_marked_verified_is_not_shown_installed(tiny_repo, hub, outside):
    from lacuna.engine.hub import manage

    record = pull(REPO, options=fast_options())
    record.pop("verified")
    records.put_install(record)
    assert manage.model_info(REPO).status == "corrupt"
    assert manage.verify(REPO).ok and manage.model_info(REPO).status == "installed"


# 3. the token goes to the endpoint's origin only ---------------------------------------

@pytest.mark.parametrize("url, base, same", [
    ("http://127.0.0.1:2718/api/x", "http://127.0.0.1:2718", True),
    ("http://127.0.0.1:27180/api/x", "http://127.0.0.1:2718", False),
    ("https://huggingface.co.evil.example/x", "https://huggingface.co", False),
    ("https://huggingface.co@evil.example/x", "https://huggingface.co", False),
    ("https://HuggingFace.co:443/x", "https://huggingface.co", True),
    ("http://huggingface.co/x", "https://huggingface.co", False),
    ("https://huggingface.co:8443/x", "https://huggingface.co", False),
    ("https://huggingface.co/x", "https://huggingface.co/mirror", True),
    ("file:///etc/passwd", "https://huggingface.co", False),
    ("https://huggingface.co:99999/x", "https://huggingface.co", False),
])
def test_same_origin_is_scheme_host_and_port(url, base, same):
    assert hubapi.same_origin(url, base) is same


@pytest.fixture
def other_origin():
    other = MockHub()
    yield other
    other.close()


def test_token_never_reaches_a_redirect_target_on_another_origin(evil, outside, other_origin, monkeypatch):
    monkeypatch.setenv("LACUNA_HF_TOKEN_ENDPOINTS", evil.url)  # trusted by the user, yet its redirect is not
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    other_origin.raw["weights"] = SMALL[WEIGHTS]
    evil.fault(WEIGHTS, redirect=f"{other_origin.url}/raw/weights")
    record = pull(EVIL, options=fast_options())
    assert record["verified"]
    assert [r.authorization for r in other_origin.log] == [None]
    assert all(r.authorization == "Bearer hf_secret" for r in evil.log)


def test_a_redirect_to_a_non_http_url_is_refused(evil, outside):
    evil.fault(WEIGHTS, redirect=f"file://{outside}/victim.txt", times=-1)
    with pytest.raises(HubError):
        pull(EVIL, options=fast_options())
    assert records.get_install(EVIL) is None


def test_an_unreadable_install_file_is_kept_aside_not_lost(evil, outside):
    data_dir = os.environ["LACUNA_DATA_DIR"]
    os.makedirs(data_dir)
    with open(os.path.join(data_dir, "installs.json"), "w") as fh:
        fh.write("{half a record")
    assert pull(EVIL, options=fast_options())["verified"]
    with open(os.path.join(data_dir, "installs.json.corrupt")) as fh:
        assert fh.read() == "{half a record"


def test_token_never_follows_a_file_list_page_to_another_origin(evil, outside, other_origin, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    evil.tree_link[EVIL] = f'<{other_origin.url}/api/models/{EVIL}/tree/page2>; rel="next"'
    with pytest.raises((HubError, InputError)):  # the other origin knows no such repo
        pull(EVIL, options=fast_options())
    assert other_origin.log and all(r.authorization is None for r in other_origin.log)
    assert records.get_install(EVIL) is None


# 4. downloads end ---------------------------------------------------------------------

def _pause_at_half(hub_model_files):
    size = len(hub_model_files[WEIGHTS])
    pause = threading.Event()

    def progress(p):
        if any(f.path == WEIGHTS and f.done >= size // 3 for f in p.files):
            pause.set()

    with pytest.raises(Paused):
        pull(REPO, progress=progress, pause=pause, options=fast_options())
    return size


def test_resume_answered_200_with_content_range_appends(tiny_repo, hub, hub_model_files, outside):
    _pause_at_half(hub_model_files)
    hub.fault(WEIGHTS, range_200=True, times=-1)
    hub.clear_log()
    record = pull(REPO, options=fast_options())
    gets = hub.requests_for(WEIGHTS)
    assert len(gets) == 1 and gets[0].range is not None, "one resumed request, appended"
    assert record["verified"] and (local_snapshot(REPO) / WEIGHTS).read_bytes() == hub_model_files[WEIGHTS]


def test_a_file_that_grows_and_shrinks_in_turn_ends(tiny_repo, hub, hub_model_files, outside):
    """Was: 200 with only the slice made the partial file alternate between two lengths for ever."""
    _pause_at_half(hub_model_files)
    hub.fault(WEIGHTS, range_200_bare=True, times=-1)
    hub.clear_log()
    start = time.monotonic()
    with pytest.raises(HubError, match="without new data"):
        pull(REPO, options=fast_options(max_retries=3))
    assert len(hub.requests_for(WEIGHTS)) <= 3 + 2
    assert time.monotonic() - start < 20
    assert records.get_install(REPO) is None


def test_attempts_per_file_are_capped_overall(tiny_repo, hub, hub_model_files, outside):
    size = len(hub_model_files[WEIGHTS])
    # every request drops one byte short of the end: however many retries are allowed, the cap ends it
    hub.fault(WEIGHTS, drop_after=size - 1, times=-1)
    with pytest.raises(HubError, match="after 4 requests"):
        pull(REPO, options=fast_options(max_retries=50, max_attempts=4))
    assert len(hub.requests_for(WEIGHTS)) == 4


@pytest.mark.parametrize("status, header, size, start", [
    (206, "bytes 100-199/200", 200, 100), (200, "bytes 100-199/200", 200, 100), (200, None, 200, 0),
    (206, None, 200, None), (206, "bytes 100-199/300", 200, None), (206, "bytes 100-199/*", 200, 100),
    (206, "bytes 250-260/200", 200, None), (206, "bytes 9-5/200", 200, None), (206, "items 1-2/200", 200, None),
    (206, "bytes -1-5/200", 200, None),
])
def test_body_start(status, header, size, start):
    assert body_start(status, header, size) == start


@pytest.mark.parametrize("kind, control", [("revision", "cancel"), ("tree", "pause"), ("tree", "cancel")])
def test_cancel_and_pause_end_a_dribbled_metadata_call_within_2_s(evil, outside, kind, control):
    """Was 19-35 s: the revision or file list sent a few bytes a second kept the pull waiting."""
    evil.dribble[kind] = 0.2
    event = threading.Event()
    outcome = {}

    def run():
        try:
            pull(EVIL, options=fast_options(), **{control: event})
        except BaseException as err:  # noqa: BLE001 - the test inspects it
            outcome["error"] = err
        outcome["at"] = time.monotonic()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert evil.dribbling.wait(10)
    time.sleep(0.3)  # a few bytes in
    asked = time.monotonic()
    event.set()
    worker.join(5)
    assert not worker.is_alive()
    assert outcome["at"] - asked < 2.0
    assert isinstance(outcome["error"], Cancelled if control == "cancel" else Paused)
    assert records.get_install(EVIL) is None


def test_a_dribbled_metadata_call_has_an_overall_deadline(evil, outside):
    evil.dribble["revision"] = 0.1
    start = time.monotonic()
    with pytest.raises(OfflineError, match="took too long"):
        pull(EVIL, options=fast_options(metadata_timeout=1.0))
    assert time.monotonic() - start < 3.0


def hashlib_git(data: bytes) -> str:
    from .mockhub import git_oid

    return git_oid(data)
