"""The catalog checked against the real repositories.

tests/data/real_checkpoints holds each catalog repository's real file list
(names and sizes, as the Hub lists them) and the real config.json of
LLaDA-8B-Instruct, Dream-v0-Instruct-7B and mdlm-owt (SOURCES.md there names
their sources). For every entry whose repository is listed: the files a pull
selects, the download size, the parameters (exact from the real config, and in
agreement with the listed weight bytes at the entry's dtype), the dtype, the
context and the licence. LLaDA-8B-Base and LLaDA-1.5 share LLaDA-8B-Instruct's
architecture and config (their listed config.json has the same size); the
LLaDA-MoE shapes come from a stand-in config (the real one is not public here)
and are checked against the real shard bytes only.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lacuna.engine.hub import catalog
from lacuna.engine.hub.download import PICKLE_SUFFIXES, select_files
from lacuna.engine.hub.errors import PickleConsentRequired
from lacuna.engine.hub.fit import dit_parameters, shape_from_config
from lacuna.engine.hub.hubapi import RemoteFile

DATA = Path(__file__).resolve().parents[2] / "data" / "real_checkpoints"
TREES = json.loads((DATA / "hub-trees.json").read_text())
CONFIGS = {
    "GSAI-ML/LLaDA-8B-Instruct": "llada-8b-instruct/config.json",
    "GSAI-ML/LLaDA-8B-Base": "llada-8b-instruct/config.json",
    "GSAI-ML/LLaDA-1.5": "llada-8b-instruct/config.json",
    "Dream-org/Dream-v0-Instruct-7B": "dream-v0-instruct-7b/config.json",
    "kuleshov-group/mdlm-owt": "mdlm-owt/config.json",
}
INDEXES = {
    "GSAI-ML/LLaDA-8B-Instruct": "llada-8b-instruct/model.safetensors.index.json",
    "Dream-org/Dream-v0-Instruct-7B": "dream-v0-instruct-7b/model.safetensors.index.json",
}
# The Hub's model cards say (see SOURCES.md); SEDD's repositories state none.
LICENCES = {"GSAI-ML/LLaDA-8B-Instruct": "mit", "GSAI-ML/LLaDA-8B-Base": "mit", "GSAI-ML/LLaDA-1.5": "mit",
            "Dream-org/Dream-v0-Instruct-7B": "apache-2.0", "kuleshov-group/mdlm-owt": "apache-2.0",
            "inclusionAI/LLaDA-MoE-7B-A1B-Base": "apache-2.0", "openai-community/gpt2": "mit"}
BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Instruct repositories not listed here have the same files as their listed sibling.
SIBLINGS = {"inclusionAI/LLaDA-MoE-7B-A1B-Instruct": "inclusionAI/LLaDA-MoE-7B-A1B-Base"}


def _entries_with_tree():
    out = []
    for entry in catalog.entries():
        repo = entry.get("repo")
        tree = TREES.get(repo) or TREES.get(SIBLINGS.get(repo, ""))
        if tree is not None:
            out.append(pytest.param(entry, tree, id=entry["id"]))
    return out


def _selected(entry, tree, allow_pickle=False):
    files = [RemoteFile(f["path"], f["size"], "0" * 40, None) for f in tree]
    return select_files(entry["repo"], "0" * 40, files, entry["files"], allow_pickle=allow_pickle,
                        with_code=False, weights=not catalog.lends_tokenizer_only(entry))


def _weights(chosen):
    return [f for f in chosen if f.path.endswith((".safetensors",) + PICKLE_SUFFIXES)]


def test_every_downloadable_catalog_entry_is_checked_against_a_real_listing():
    checked = {p.values[0]["id"] for p in _entries_with_tree()}
    assert {"llada-8b-instruct", "llada-8b-base", "llada-1.5", "llada-moe-7b-a1b-instruct", "llada-moe-7b-a1b-base",
            "dream-7b-instruct", "mdlm-owt", "sedd-small", "sedd-medium", "gpt2-tokenizer"} <= checked


@pytest.mark.parametrize("entry, tree", _entries_with_tree())
def test_a_pull_selects_what_the_model_needs_and_nothing_else(entry, tree):
    try:
        chosen = _selected(entry, tree)
    except PickleConsentRequired as consent:  # the model's own weights are a pickle: asked, then fetched
        assert all(name.endswith(PICKLE_SUFFIXES) for name in consent.files)
        chosen = _selected(entry, tree, allow_pickle=True)
    names = {f.path for f in chosen}
    assert not any(n.endswith(".py") for n in names), "never a repository's code"
    if catalog.lends_tokenizer_only(entry):
        assert names == set(entry["files"]) and not _weights(chosen)
    else:
        assert "config.json" in names and _weights(chosen)
        if any(n.endswith(".safetensors") for n in names):
            assert not any(n.endswith(PICKLE_SUFFIXES) for n in names), "no pickle beside safetensors"
        index = INDEXES.get(entry["repo"])
        if index:
            shards = set(json.loads((DATA / index).read_text())["weight_map"].values())
            assert shards == {f.path for f in _weights(chosen)}
    if entry["download_size"] is not None:
        assert entry["download_size"] == pytest.approx(sum(f.size for f in chosen), rel=0.005)


@pytest.mark.parametrize("entry, tree", _entries_with_tree())
def test_parameters_and_dtype_agree_with_the_listed_weight_bytes(entry, tree):
    if catalog.lends_tokenizer_only(entry):
        return
    try:
        chosen = _selected(entry, tree)
    except PickleConsentRequired:
        chosen = _selected(entry, tree, allow_pickle=True)
    stored = sum(f.size for f in _weights(chosen))
    assert entry["dtype"] in BYTES
    # the Hub prints sizes to three figures: 1% covers its rounding and the files' headers
    assert entry["parameters"] * BYTES[entry["dtype"]] == pytest.approx(stored, rel=0.01)


@pytest.mark.parametrize("repo", sorted(CONFIGS))
def test_parameters_shape_and_context_match_the_real_config(repo):
    config = json.loads((DATA / CONFIGS[repo]).read_text())
    entry = catalog.catalog_entry(repo)
    if config.get("model_type") == "mdlm":
        assert entry["parameters"] == dit_parameters(config["hidden_dim"], config["n_blocks"], config["cond_dim"],
                                                     config["vocab_size"])
        assert entry["context_length"] == config["model_length"]
    else:
        assert entry["parameters"] == shape_from_config(config).parameters
        context = config.get("max_sequence_length") or config["max_position_embeddings"]
        # Dream inherits Qwen2.5's 131072 positions but was trained at 2048, which the entry gives
        assert entry["context_length"] == (2048 if config["model_type"] == "Dream" else context)
    for key, value in (entry.get("shape") or {}).items():
        assert config.get(key, value) == value, key
    if "torch_dtype" in config:
        assert entry["dtype"] == config["torch_dtype"]


@pytest.mark.parametrize("repo", sorted(LICENCES))
def test_licences_are_the_hubs(repo):
    assert catalog.catalog_entry(repo)["license"] == LICENCES[repo]


def test_llada_moe_entries_count_what_their_shards_hold():
    shards = [f for f in TREES["inclusionAI/LLaDA-MoE-7B-A1B-Base"] if f["path"].endswith(".safetensors")]
    for name in ("llada-moe-7b-a1b-base", "llada-moe-7b-a1b-instruct"):
        entry = catalog.catalog_entry(name)
        assert entry["parameters"] == shape_from_config(entry["shape"]).parameters
        assert entry["parameters"] * 2 == pytest.approx(sum(f["size"] for f in shards), rel=0.01)
