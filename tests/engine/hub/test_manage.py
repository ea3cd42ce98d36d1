"""Listing, verifying, removing, and finding snapshots: all offline."""
from __future__ import annotations

import hashlib
import json
import socket

import pytest

from lacuna.engine.hub import cache, catalog_entry, local_snapshot, records
from lacuna.engine.hub.download import pull
from lacuna.engine.hub.errors import NotInstalled
from lacuna.engine.hub.manage import list_models, model_info, remove, verify

from .conftest import REPO, fast_options

WEIGHTS = "model.safetensors"


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def installed(tiny_repo, hub):
    pull(REPO, options=fast_options())
    return tiny_repo


def test_listing_and_loading_paths_never_touch_the_network(installed, no_network):
    models = {m.id: m for m in list_models()}
    assert models[REPO].status == "installed" and models[REPO].commit == installed
    assert models[REPO].family == "bert" and models[REPO].loadable
    assert models["llada-8b-instruct"].status == "available" and models["llada-8b-instruct"].loadable
    assert local_snapshot(REPO).name == installed
    assert verify(REPO).ok


def test_verify_detects_a_corrupted_file_and_marks_the_model_corrupt(installed, hub_model_files):
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    blob = cache.blob_path(REPO, sha)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    report = verify(REPO)
    assert not report.ok and "model.safetensors does not match its sha256" in report.message()
    assert not blob.exists(), "the bad file is deleted"
    assert model_info(REPO).status == "corrupt"
    assert local_snapshot(REPO) is None, "a corrupt model is not offered for loading"
    pull(REPO, options=fast_options())
    assert verify(REPO).ok and model_info(REPO).status == "installed"


def test_remove_deletes_snapshot_blobs_and_record(installed):
    folder = cache.paths.repo_dir(REPO)
    assert folder.is_dir()
    freed = remove(REPO)
    assert freed > 0 and not folder.exists()
    assert records.get_install(REPO) is None and local_snapshot(REPO) is None
    with pytest.raises(NotInstalled):
        remove(REPO)
    with pytest.raises(NotInstalled):
        verify(REPO)


def test_remove_keeps_blobs_another_snapshot_uses(installed, hub, hub_model_files):
    other = cache.snapshot_dir(REPO, "f" * 40)
    sha = hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()
    other.mkdir(parents=True)
    (other / WEIGHTS).symlink_to(f"../../blobs/{sha}")
    remove(REPO)
    assert cache.blob_path(REPO, sha).is_file()
    assert not cache.snapshot_dir(REPO, installed).exists()


def test_local_snapshot_falls_back_to_a_complete_hf_cache_snapshot(hub, hub_model_files, no_network):
    """A model fetched by other tools (huggingface_hub) is found without any Lacuna record."""
    repo = "other-org/model"
    blobs = cache.paths.repo_dir(repo) / "blobs"
    blobs.mkdir(parents=True)
    commit = "a" * 40
    snap = cache.snapshot_dir(repo, commit)
    snap.mkdir(parents=True)
    for name in ("config.json", WEIGHTS):
        digest = hashlib.sha256(hub_model_files[name]).hexdigest()
        (blobs / digest).write_bytes(hub_model_files[name])
        (snap / name).symlink_to(f"../../blobs/{digest}")
    (cache.paths.repo_dir(repo) / "refs").mkdir()
    (cache.paths.repo_dir(repo) / "refs" / "main").write_text(commit)
    assert local_snapshot(repo) == snap
    # an incomplete snapshot (a dangling link) is not offered
    (blobs / hashlib.sha256(hub_model_files[WEIGHTS]).hexdigest()).unlink()
    assert local_snapshot(repo) is None
    assert local_snapshot("never/downloaded") is None
    assert local_snapshot("starter") is None or local_snapshot("starter").is_dir()


def test_sharded_snapshot_needs_every_shard(hub, tmp_path):
    snap = cache.snapshot_dir("org/sharded", "b" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap / "model-00001-of-00002.safetensors").write_bytes(b"x")
    (snap / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert local_snapshot("org/sharded") is None
    (snap / "model-00002-of-00002.safetensors").write_bytes(b"y")
    assert local_snapshot("org/sharded") == snap


def test_catalog_has_the_issue_models_and_keeps_the_starter(hub):
    from lacuna.engine.hub.catalog import entries

    ids = {e.get("repo") or e["id"] for e in entries()}
    for repo in ("starter", "GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-8B-Base", "GSAI-ML/LLaDA-1.5",
                 "inclusionAI/LLaDA-MoE-7B-A1B-Instruct", "inclusionAI/LLaDA-MoE-7B-A1B-Base",
                 "apple/DiffuCoder-7B-Base", "apple/DiffuCoder-7B-Instruct", "Dream-org/Dream-v0-Instruct-7B",
                 "Dream-org/Dream-v0-Base-7B", "kuleshov-group/mdlm-owt", "louaaron/sedd-small",
                 "louaaron/sedd-medium", "dllm-hub/ModernBERT-base-chat-v0.1",
                 "dllm-hub/ModernBERT-large-chat-v0.1", "JaydeepR/ldm-modernbert-base-pretrain"):
        assert repo in ids, repo
    starter = catalog_entry("starter")
    assert starter["bundled"] == "models/starter" and starter["loadable"]
    # old org name of the dLLM chat models still finds them
    assert catalog_entry("dllm-collection/ModernBERT-base-chat-v0.1")["repo"] == "dllm-hub/ModernBERT-base-chat-v0.1"
    llada = catalog_entry("llada-8b-instruct")
    assert llada["memory"]["bf16"] > llada["memory"]["int8"] > llada["memory"]["int4"]
    # loadable means the engine has a loader for the family: masked LMs or a native module
    import importlib.util

    from lacuna.engine.models.families import FAMILIES

    native = {f.name for f in FAMILIES if importlib.util.find_spec(f"lacuna.engine.models.{f.module}")}
    for e in entries():
        assert not e["loadable"] or e["family"] in {"bert", "modernbert"} | native, e["id"]
    for fam in ("dream", "llada_moe"):
        assert any(e["family"] == fam and e["loadable"] for e in entries()), fam


def test_users_add_repo_ids_and_local_folders(hub, tiny_bert_dir):
    from lacuna.engine.errors import InputError
    from lacuna.engine.hub.catalog import add_user_entry, remove_user_entry

    add_user_entry("someone/thing")
    assert catalog_entry("someone/thing")["source"] == "user"
    entry = add_user_entry(str(tiny_bert_dir))
    assert entry["family"] == "bert"
    assert local_snapshot(entry["id"]) == tiny_bert_dir.resolve()
    assert any(m.id == entry["id"] and m.status == "local" for m in list_models())
    with pytest.raises(InputError):
        add_user_entry("not a repo")
    assert remove_user_entry("someone/thing") and catalog_entry("someone/thing") is None
