"""Every catalog model the way a user gets it: `lacuna-cli models pull <id>` from a
Hub serving the real repository's layout (its real file list and sizes, real
small files, random weights under the real tensor and shard names, see
tests/support/real_checkpoints.py), then `lacuna-cli infill --model <id>`.
Also a cache laid out by huggingface_hub's own snapshot_download."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from lacuna.engine.cli import main
from lacuna.engine.models.weights import read_header
from tests.support.real_checkpoints import (
    DATA, DREAM_WIDTH, GPT2, LLADA_WIDTH, MODELS, full_size_index, hub_repo, hub_trees, publish, real, real_json,
)

TEXT = "In the beginning God created the [[4]] and the earth."
BEFORE, AFTER = "In the beginning God created the ", " and the earth."


def shards(n: int) -> set[str]:
    return {f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)}


LLADA = {"config.json", "generation_config.json", "model.safetensors.index.json", "special_tokens_map.json",
         "tokenizer.json", "tokenizer_config.json"} | shards(6)
# What each pull must fetch, and nothing else: the weights, config and tokenizer files.
FETCHED = {
    "llada-8b-instruct": LLADA,
    "llada-1.5": LLADA,
    "dream-7b-instruct": {"config.json", "generation_config.json", "model.safetensors.index.json",
                          "special_tokens_map.json", "tokenizer_config.json", "added_tokens.json",
                          "vocab.json", "merges.txt"} | shards(4),
    "llada-moe-7b-a1b-instruct": {"config.json", "generation_config.json", "model.safetensors.index.json",
                                  "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"} | shards(3),
    "mdlm-owt": {"config.json", "model.safetensors"},
    "sedd-small": {"config.json", "pytorch_model.bin"},
}
# GPT-2's tokenizer, fetched with MDLM and SEDD: never its weights.
GPT2_FETCHED = {"config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"}
WIDTH = {"llada-8b-instruct": LLADA_WIDTH, "dream-7b-instruct": DREAM_WIDTH}
FAMILY = {"llada-8b-instruct": "llada", "llada-1.5": "llada", "dream-7b-instruct": "dream",
          "llada-moe-7b-a1b-instruct": "llada_moe", "mdlm-owt": "mdlm", "sedd-small": "sedd"}


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def check_filled(out: str) -> str:
    """The --json answer of `infill TEXT`: the hole filled, the rest as it was; returns the fill."""
    data = json.loads(out)
    text, (span,) = data["text"], data["spans"]
    assert text[: span["start"]] == BEFORE and text[span["end"]:] == AFTER
    assert span["end"] > span["start"] and span["length"] == 4
    return text[span["start"]: span["end"]]


def infill(capsys, hub, model_id: str) -> str:
    hub.clear_log()
    code, out, err = cli(capsys, "infill", "--model", model_id, "--device", "cpu", "--steps", "2", "--json", TEXT)
    assert code == 0, err
    assert hub.log == [], "infill is offline: it asks the Hub nothing"
    return check_filled(out)


def check_fetched(hub, model_id: str) -> None:
    repo = hub_repo(model_id)
    assert hub.fetched(repo.repo) == FETCHED[model_id]
    assert not hub.fetched(repo.repo) & repo.code, "a repository's code is never fetched"
    if MODELS[model_id].companion:
        assert hub.fetched(GPT2) == GPT2_FETCHED
    assert hub.violations == [], "a listed-only file (weights nobody needs) was asked for"


@pytest.mark.parametrize("model_id", sorted(FETCHED))
def test_pull_then_infill_by_catalog_id(hub, capsys, model_id):
    publish(hub, model_id)
    flags = ("--allow-pickle",) if model_id == "sedd-small" else ()
    code, out, err = cli(capsys, "models", "pull", model_id, *flags)
    assert code == 0, err
    assert "installed and verified" in out
    check_fetched(hub, model_id)

    fill = infill(capsys, hub, model_id)
    assert fill.strip(), "the hole is filled with text"
    code, out, _ = cli(capsys, "models", "list", "--json")
    row = {r["id"]: r for r in json.loads(out)}[model_id]
    assert row["status"] == "installed" and row["family"] == FAMILY[model_id]
    if model_id == "sedd-small":  # rm also deletes the safetensors copy made of its pickle
        from lacuna.engine.hub.paths import data_dir

        assert list((data_dir() / "converted").rglob("model.safetensors"))
        code, out, err = cli(capsys, "models", "rm", model_id)
        assert code == 0, err
        assert not list((data_dir() / "converted").rglob("model.safetensors"))


def test_pickle_consent_is_asked_for_the_models_own_weights_only(hub, capsys):
    """SEDD ships only a pickle: its pull asks consent for that file and no other;
    MDLM's GPT-2 companion, whose repository also holds pickles, asks none."""
    publish(hub, "sedd-small")
    code, out, err = cli(capsys, "models", "pull", "sedd-small")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "louaaron/sedd-small" in err and "pytorch_model.bin" in err and "--allow-pickle" in err
    assert "gpt2" not in err
    assert hub.fetched("louaaron/sedd-small") <= {"config.json"} and hub.fetched(GPT2) == set()

    publish(hub, "mdlm-owt")
    code, out, err = cli(capsys, "models", "pull", "mdlm-owt")
    assert code == 0, err
    assert hub.fetched(GPT2) == GPT2_FETCHED and hub.violations == []


def test_a_pickle_without_consent_is_refused_in_one_line(hub, capsys, tmp_path):
    """SEDD's files copied into a folder by hand (no Lacuna pull, so no consent on record)."""
    folder = tmp_path / "sedd"
    folder.mkdir()
    for name in FETCHED["sedd-small"]:
        (folder / name).write_bytes(hub_repo("sedd-small").files[name])
    (folder / "tokenizer.json").write_bytes(hub_repo("gpt2-tokenizer").files["tokenizer.json"])
    code, _, err = cli(capsys, "infill", "--model", str(folder), "--device", "cpu", TEXT)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "--allow-pickle" in err and "pytorch_model.bin" in err


# snapshot_download patterns a user would give: a sharded model, and one with a companion
PATTERNS = {
    "llada-8b-instruct": ["*.json", "*.safetensors"],
    "mdlm-owt": ["*.json", "*.safetensors"],
}


@pytest.mark.parametrize("model_id", sorted(PATTERNS))
def test_a_cache_laid_out_by_snapshot_download_loads(hub, capsys, tmp_path, monkeypatch, model_id):
    """No Lacuna pull: huggingface_hub's own snapshot_download fills the cache
    (symlinks into blobs/, its own refs), and infill loads the model by catalog id."""
    from huggingface_hub import constants, snapshot_download

    # read once at its import, which may have happened under tests/conftest.py's HF_HUB_OFFLINE=1
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    cache = tmp_path / "hf-cache"  # the hub fixture's HF_HUB_CACHE
    model_repo, *companion = publish(hub, model_id)
    folder = Path(snapshot_download(model_repo.repo, allow_patterns=PATTERNS[model_id], cache_dir=cache,
                                    endpoint=hub.url))
    assert folder.parent.parent == cache / f"models--{model_repo.repo.replace('/', '--')}"
    assert all((folder / name).is_symlink() for name in FETCHED[model_id]), "huggingface_hub's own layout"
    if companion:
        snapshot_download(GPT2, allow_patterns=["tokenizer*", "vocab.json", "merges.txt", "config.json"],
                          cache_dir=cache, endpoint=hub.url)
    assert hub.violations == [] and not hub.fetched(model_repo.repo) & model_repo.code
    fill = infill(capsys, hub, model_id)
    assert fill.strip()


# ---------------------------------------------------------------- the served layouts are the real ones

def test_listed_only_files_are_in_the_tree_with_their_real_size_and_any_request_is_recorded(hub):
    import urllib.error
    import urllib.request

    from lacuna.engine.hub import hubapi

    (gpt2,) = publish(hub, "gpt2-tokenizer")
    commit = hubapi.resolve_revision(GPT2, "main")
    tree = {f.path: f for f in hubapi.list_tree(GPT2, commit)}
    assert set(tree) == set(hub_trees()[GPT2])
    assert tree["pytorch_model.bin"].size == 548_000_000 and tree["pytorch_model.bin"].sha256
    assert hub.violations == []
    for method, url in (("HEAD", f"{hub.url}/{GPT2}/resolve/main/model.safetensors"),
                        ("GET", f"{hub.url}/lfs-cdn/{GPT2}/{commit}/onnx/decoder_model.onnx")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10)
        assert refused.value.code == 404
    assert hub.violations == [(GPT2, "model.safetensors", "HEAD"), (GPT2, "onnx/decoder_model.onnx", "GET")]
    assert hub.fetched(GPT2) == set() and "onnx/decoder_model.onnx" in gpt2.listed


@pytest.mark.parametrize("model_id", sorted(MODELS))
def test_each_repository_is_served_with_its_real_file_list(model_id):
    listing = hub_trees()[MODELS[model_id].listing]
    repo = hub_repo(model_id)
    assert set(repo.files) | set(repo.listed) == set(listing)
    assert all(len(repo.files[p]) == listing[p] for p in repo.placeholders)
    assert all(size == listing[p] for p, size in repo.listed.items())
    assert repo.code <= repo.placeholders, "code files are never built, only listed with their size"


@pytest.mark.parametrize("model_id, folder", [("llada-8b-instruct", "llada-8b-instruct"),
                                              ("dream-7b-instruct", "dream-v0-instruct-7b")])
def test_real_small_files_byte_for_byte_and_config_shrunk_in_width_only(model_id, folder, tmp_path):
    repo = hub_repo(model_id)
    for name in repo.built:
        if (DATA / folder / name).is_file() or (DATA / folder / f"{name}.gz").is_file():
            if name not in ("config.json", "model.safetensors.index.json"):
                assert repo.files[name] == real(f"{folder}/{name}"), name
    served, original = json.loads(repo.files["config.json"]), real_json(f"{folder}/config.json")
    assert list(served) == list(original)
    assert {k for k in original if served[k] != original[k]} == set(WIDTH[model_id])
    index = json.loads(repo.files["model.safetensors.index.json"])
    assert index["weight_map"] == real_json(f"{folder}/model.safetensors.index.json")["weight_map"]
    stored = {}
    for shard in set(index["weight_map"].values()):
        (tmp_path / shard).write_bytes(repo.files[shard])
        for info in read_header(tmp_path / shard):
            assert index["weight_map"][info.name] == shard, "every tensor sits in the shard the real index names"
            stored[info.name] = info
    assert set(stored) == set(index["weight_map"])
    assert index["metadata"]["total_size"] == sum(i.nbytes for i in stored.values())
    assert {str(i.dtype) for i in stored.values()} == {"torch.bfloat16"}
    embedding = next(i for n, i in stored.items() if n.endswith(("wte.weight", "embed_tokens.weight")))
    assert embedding.shape[0] == original.get("embedding_size", original["vocab_size"]), "real vocabulary rows"


@pytest.mark.parametrize("model_id", ["llada-1.5", "llada-moe-7b-a1b-instruct"])
def test_a_stand_in_index_reproduces_the_listed_shard_sizes(model_id):
    """The indexes that are not public are rebuilt the way save_pretrained shards;
    at the real shapes they give every shard size the Hub lists (3 significant digits)."""
    index, sizes = full_size_index(model_id)
    listing = hub_trees()[MODELS[model_id].listing]
    for shard, size in sizes.items():
        assert round(size, -7) == round(listing[shard], -7), shard
    if model_id.startswith("llada-moe"):  # the index file itself: ~287 kB of names, as listed
        assert abs(len(json.dumps(index, indent=2)) - listing["model.safetensors.index.json"]) < 2_000
    served = json.loads(hub_repo(model_id).files["model.safetensors.index.json"])
    assert served["weight_map"] == index["weight_map"]


def test_llada_stand_in_tokenizer_holds_the_real_special_tokens_at_their_ids():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(hub_repo("llada-8b-instruct").files["tokenizer.json"].decode())
    decoder = real_json("llada-8b-instruct/tokenizer_config.json")["added_tokens_decoder"]
    assert {int(i): tok.token_to_id(e["content"]) for i, e in decoder.items()} == {int(i): int(i) for i in decoder}
    config = real_json("llada-8b-instruct/config.json")
    assert tok.id_to_token(config["mask_token_id"]) == "<|mdm_mask|>"
    assert tok.id_to_token(config["eos_token_id"]) == "<|endoftext|>"
    assert tok.get_vocab_size() == max(map(int, decoder)) + 1 <= config["vocab_size"]


def test_gpt2_tokenizer_json_is_built_from_the_real_vocabulary():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(hub_repo("gpt2-tokenizer").files["tokenizer.json"].decode())
    assert tok.encode("Hello world").ids == [15496, 995]  # GPT-2's ids, as every GPT-2 tutorial shows
    assert tok.token_to_id("<|endoftext|>") == 50256 and tok.get_vocab_size() == 50257
    assert tok.decode(tok.encode(" naïve café 🙂").ids) == " naïve café 🙂"
