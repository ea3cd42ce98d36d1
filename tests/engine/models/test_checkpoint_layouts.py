"""A sharded checkpoint loads and fills from every layout a user can have on disk.

The Hugging Face cache (Lacuna's own pulls, `hf download`, `snapshot_download`)
keeps each snapshot file as a relative symlink into ``blobs/``; where symlinks
are impossible (Windows without developer mode) the snapshot holds copies; a
``local_dir`` download is a plain folder with huggingface_hub's metadata under
``.cache/huggingface``; and a user may assemble a folder of symlinks to files
kept elsewhere. An index that names a file outside the checkpoint stays refused,
judged on the name it gives, not on where a symlink points.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lacuna.engine import InfillRequest, ModelLoadError, Span, infill, load_model
from lacuna.engine.models.weights import INDEX, checkpoint_files
from tests.support.tiny_llada import build_tiny_llada

REPO = "test-org/tiny-llada-sharded"
TEXT = "alpha beta gamma delta epsilon"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    return build_tiny_llada(tmp_path_factory.mktemp("src") / "model", shards=3, dtype="bfloat16")


def _blob_name(file: Path) -> str:
    data = file.read_bytes()
    if file.suffix == ".safetensors":  # LFS files are named by their sha256, the others by git's sha1
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's object id


def hf_cache(src: Path, cache: Path, repo: str, *, links: bool) -> Path:
    """``src`` laid out as huggingface_hub stores a repo: blobs, a snapshot (relative
    symlinks into blobs, or copies) and refs/main. Returns the snapshot folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    commit = hashlib.sha1(repo.encode()).hexdigest()  # noqa: S324
    snapshot = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for file in sorted(src.iterdir()):
        blob = root / "blobs" / _blob_name(file)
        shutil.copyfile(file, blob)
        if links:
            os.symlink(os.path.relpath(blob, snapshot), snapshot / file.name)
        else:
            shutil.copyfile(blob, snapshot / file.name)
    return snapshot


def _fills(model) -> None:
    result = infill(model, InfillRequest(TEXT, (Span(6, 10),), steps=2))
    assert result.text.startswith("alpha ") and result.text.endswith(" gamma delta epsilon")


@pytest.mark.parametrize("links", [True, False], ids=["symlinks-into-blobs", "copies"])
def test_the_hf_cache_layout_loads_by_repo_id(sharded, tmp_path, monkeypatch, links):
    cache = tmp_path / "hub"
    snapshot = hf_cache(sharded, cache, REPO, links=links)
    assert (snapshot / "model-00001-of-00003.safetensors").is_symlink() == links
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = load_model(REPO, device="cpu", dtype="float32")
    assert model.path == str(snapshot)
    # the files as named in the snapshot, not their blobs
    assert [f.name for f in checkpoint_files(snapshot)] == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    _fills(model)


def test_a_local_dir_download_loads(sharded, tmp_path):
    # `hf download --local-dir`: plain files plus huggingface_hub's metadata folder
    folder = tmp_path / "local"
    shutil.copytree(sharded, folder)
    meta = folder / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    for file in sharded.iterdir():
        (meta / (file.name + ".metadata")).write_text("0" * 40 + "\n" + _blob_name(file) + "\n1733616000.0\n")
    (folder / ".cache" / "huggingface" / ".gitignore").write_text("*\n")
    _fills(load_model(str(folder), device="cpu", dtype="float32"))


@pytest.mark.parametrize("absolute", [True, False])
def test_a_folder_of_symlinks_to_elsewhere_loads(sharded, tmp_path, absolute):
    store = tmp_path / "store"
    shutil.copytree(sharded, store)
    folder = tmp_path / "linked"
    folder.mkdir()
    for file in store.iterdir():
        os.symlink(file if absolute else os.path.relpath(file, folder), folder / file.name)
    _fills(load_model(str(folder), device="cpu", dtype="float32"))


def _with_index_naming(src: Path, dest: Path, shard: str) -> Path:
    shutil.copytree(src, dest)
    index = json.loads((dest / INDEX).read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    (dest / INDEX).write_text(json.dumps(index))
    return dest


@pytest.mark.parametrize("named", ["../outside.safetensors", "/etc/passwd", "sub/../../x.safetensors",
                                   "./model-00001-of-00003.safetensors", "C:/model.safetensors"])
def test_an_index_naming_a_file_outside_is_refused(sharded, tmp_path, named):
    outside = tmp_path / "outside.safetensors"
    shutil.copyfile(sharded / "model-00001-of-00003.safetensors", outside)  # it exists: only the name refuses it
    folder = _with_index_naming(sharded, tmp_path / "model", named)
    with pytest.raises(ModelLoadError, match="outside"):
        load_model(str(folder), device="cpu")


def test_a_shard_named_inside_is_judged_on_its_name_not_its_link(sharded, tmp_path):
    # a shard whose name is plain but whose link points far away (the HF cache's own shape)
    far = tmp_path / "far" / "deep"
    far.mkdir(parents=True)
    folder = tmp_path / "model"
    shutil.copytree(sharded, folder)
    shard = folder / "model-00002-of-00003.safetensors"
    shutil.move(shard, far / "blob")
    os.symlink(far / "blob", shard)
    assert shard in checkpoint_files(folder)
    _fills(load_model(str(folder), device="cpu", dtype="float32"))


def test_a_missing_shard_says_to_download_again(sharded, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(sharded, folder)
    (folder / "model-00003-of-00003.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model-00003-of-00003.safetensors.*download or copy"):
        checkpoint_files(folder)


_part = st.text(alphabet="ab.-_", min_size=1, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_part, st.sampled_from(["..", ".", ""])), min_size=1, max_size=5),
       st.booleans())
@example(["..", "x.safetensors"], False)
@example(["a", "..", "..", "b"], True)
def test_no_shard_name_escapes_the_folder(tmp_path_factory, parts, absolute):
    """Property: a name is accepted only if, read as a path, it stays inside the folder
    without climbing (no '..', '.', empty or absolute parts)."""
    from lacuna.engine.models.weights import _inside_as_named

    name = ("/" if absolute else "") + "/".join(parts)
    accepted = _inside_as_named(name)
    if accepted:
        base = Path("/checkpoint")
        assert not absolute and os.path.normpath(base / name).startswith(str(base) + os.sep)
        assert all(p not in ("..", ".", "") for p in name.split("/"))


def test_a_pickle_index_whose_shards_were_not_fetched_leaves_the_cache_complete(sharded, tmp_path, monkeypatch):
    """`hf download --include '*.json' '*.safetensors'` of a repo shipping both formats leaves
    pytorch_model.bin.index.json without its .bin shards: the safetensors checkpoint is complete."""
    cache = tmp_path / "hub"
    snapshot = hf_cache(sharded, cache, REPO, links=True)
    (snapshot / "pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": {"w": "pytorch_model-00001-of-00002.bin"}}))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    _fills(load_model(REPO, device="cpu", dtype="float32"))
