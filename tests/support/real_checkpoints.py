"""What the Hugging Face Hub serves for each catalog repository, rebuilt from the
real files in tests/data/real_checkpoints (see its SOURCES.md).

For a catalog model, :func:`hub_repo` gives the repository as a mock Hub serves it:

- every file of the real repository's listing (hub-trees.json), under its real name;
- the real small files byte for byte (tokenizer_config.json, special_tokens_map.json,
  generation_config.json, added_tokens.json, vocab.json, merges.txt, the index's
  tensor and shard names);
- config.json: the real config with only its width keys shrunk (every layer, the
  vocabulary rows, the context and the special ids stay real);
- weights: random, in the dtype the repository stores, under the real tensor names,
  split into the real shard files by the real weight_map (metadata.total_size
  recomputed); SEDD's as the plain-state-dict pickle the repository ships;
- code files (``*.py``), README.md and .gitattributes as placeholder bytes of the
  listed size: Lacuna must never fetch them for a catalog model;
- large files Lacuna must never fetch (GPT-2's other weights, ONNX, TFLite ...)
  "listed only": in the tree with their real size and a sha256, never served.

Where a real file is not public (LLaDA's tokenizer.json, LLaDA-MoE's config,
tokenizer and index, LLaDA-1.5's small files and index, SEDD's config text,
GPT-2's tokenizer.json), a stand-in described in SOURCES.md takes its place.
Each repository is built once per process (a few seconds) and kept in memory.
"""
from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

DATA = Path(__file__).resolve().parent.parent / "data" / "real_checkpoints"
GPT2 = "openai-community/gpt2"
PLACEHOLDER_LIMIT = 64 * 1024  # listed files up to this size that nothing builds are served as placeholders
WEIGHT_STD = 0.05

# Widths that shrink; depths, vocabularies, contexts and ids stay as released.
LLADA_WIDTH = {"d_model": 16, "n_heads": 4, "n_kv_heads": 4, "mlp_hidden_size": 32}
DREAM_WIDTH = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2}
MOE_WIDTH = {"hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 2,
             "dense_intermediate_size": 32, "expert_intermediate_size": 8}
DIT_WIDTH = {"hidden": 16, "n_heads": 2, "cond_dim": 8}


@dataclass(frozen=True)
class HubRepo:
    """A repository as the mock Hub serves it (plain data).

    ``files``: path -> bytes served; ``built``: the paths rebuilt from real data
    (what a pull of the model should fetch, no more); ``placeholders``: paths served
    as filler bytes of the listed size (code, README ...); ``listed``: path -> real
    size of files only listed, never served."""

    repo: str
    files: dict[str, bytes]
    built: frozenset[str]
    placeholders: frozenset[str]
    listed: dict[str, int]

    @property
    def code(self) -> frozenset[str]:
        return frozenset(p for p in self.files if p.endswith(".py"))


@dataclass(frozen=True)
class Model:
    id: str                 # catalog id
    repo: str               # the Hub repository the catalog names
    listing: str            # whose real file listing (hub-trees.json) it is served with
    build: Callable[[], dict[str, bytes]]
    companion: str | None = None


# ---------------------------------------------------------------- real files

def real(rel: str) -> bytes:
    """A file of tests/data/real_checkpoints by its real name (vocabularies are stored gzip-compressed)."""
    path = DATA / rel
    if path.is_file():
        return path.read_bytes()
    return gzip.decompress((DATA / (rel + ".gz")).read_bytes())


def real_json(rel: str) -> Any:
    return json.loads(real(rel))


@lru_cache(maxsize=None)
def hub_trees() -> dict[str, dict[str, int]]:
    """repo -> {path: size in bytes} of every file on its main branch, as the Hub lists it."""
    trees = json.loads((DATA / "hub-trees.json").read_text(encoding="utf-8"))
    return {repo: {f["path"]: int(f["size"]) for f in files} for repo, files in trees.items()}


def dumps(data: Any) -> bytes:
    """JSON as the Hub's config files are written (two-space indent, no final newline)."""
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def shrunk(config: dict, **width: Any) -> dict:
    """``config`` with only the given keys changed, in its own key order."""
    missing = set(width) - set(config)
    if missing:
        raise AssertionError(f"not keys of the real config: {sorted(missing)}")
    return {k: width.get(k, v) for k, v in config.items()}


# ---------------------------------------------------------------- weights

def random_weights(names_shapes: dict[str, tuple[int, ...]], dtype: str, seed: int = 0) -> dict:
    """Seeded random tensors (tests.reference.recipe: the same on every machine),
    norm weights near 1, in ``dtype`` ("bfloat16" or "float32")."""
    import torch

    from tests.reference.recipe import seeded_state_dict

    state = seeded_state_dict(names_shapes, seed, std=WEIGHT_STD)
    return {k: v.to(getattr(torch, dtype)).contiguous() for k, v in state.items()}


def meta_shapes(factory: Callable[[], Any]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a network built on the meta device (no memory)."""
    import torch

    from lacuna.engine.models.native import _no_init  # torch's meta init would import torch._dynamo (seconds)

    with torch.device("meta"), _no_init():
        net = factory()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def sharded(state: dict, index: dict) -> dict[str, bytes]:
    """The shard files of ``index["weight_map"]`` holding ``state``, plus the index
    itself with metadata.total_size recomputed (its key order kept)."""
    from safetensors.torch import save

    weight_map = index["weight_map"]
    if set(weight_map) != set(state):
        extra, lacking = sorted(set(state) - set(weight_map)), sorted(set(weight_map) - set(state))
        raise AssertionError(f"tensor names differ from the real index: network only {extra[:3]}, "
                             f"index only {lacking[:3]}")
    out: dict[str, bytes] = {}
    for shard in sorted(set(weight_map.values())):
        part = {k: state[k] for k in weight_map if weight_map[k] == shard}
        out[shard] = save(part, metadata={"format": "pt"})
    total = sum(t.numel() * t.element_size() for t in state.values())
    out["model.safetensors.index.json"] = dumps({**index, "metadata": {**index["metadata"], "total_size": total}})
    return out


def packed_index(tensors: list[tuple[str, int]], shards: int, max_shard_bytes: int) -> dict:
    """A weight_map as transformers' save_pretrained writes it: tensors in the
    module order, a new shard whenever the next tensor would pass max_shard_bytes.
    ``tensors``: (name, bytes at the real shapes) in module order."""
    names = [f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)]
    weight_map: dict[str, str] = {}
    shard, size = 0, 0
    for name, nbytes in tensors:
        if size and size + nbytes > max_shard_bytes:
            shard, size = shard + 1, 0
        weight_map[name] = names[shard]
        size += nbytes
    if shard != shards - 1:
        raise AssertionError(f"packing made {shard + 1} shards, the repository has {shards}")
    return {"metadata": {"total_size": sum(b for _, b in tensors)}, "weight_map": weight_map}


# ---------------------------------------------------------------- tokenizers

def _trained_bpe():
    """A byte-level BPE of a few hundred tokens trained on the test text (no specials)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from tests.support.tiny import TEXT

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([TEXT] * 20, trainer=trainer)
    return tok


def _fillers():
    """Word-start tokens of three or four lowercase letters ('Ġ' is byte-level's space)."""
    import itertools
    import string

    for n in (3, 4):
        for letters in itertools.product(string.ascii_lowercase, repeat=n):
            yield "\u0120" + "".join(letters)


def stand_in_tokenizer(base_ids: int, added: tuple[tuple[int, tuple[tuple[str, Any], ...]], ...]) -> bytes:
    """tokenizer.json of a byte-level BPE with ``base_ids`` base ids (a trained few
    hundred, then word tokens no merge reaches) and ``added`` ((id, added-token
    entry items) pairs, ids dense from ``base_ids``) at their exact ids."""
    from tokenizers import Tokenizer

    added = {i: dict(entry) for i, entry in added}
    state = json.loads(_trained_bpe().to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    fillers = _fillers()
    while len(vocab) < base_ids:
        token = next(fillers)
        if token not in vocab:
            vocab[token] = len(vocab)
    if sorted(added) != list(range(base_ids, base_ids + len(added))):
        raise AssertionError("added token ids must follow the base vocabulary without gaps")
    state["added_tokens"] = [{"id": i, **added[i]} for i in sorted(added)]
    tok = Tokenizer.from_str(json.dumps(state))
    wrong = {i: e["content"] for i, e in added.items() if tok.token_to_id(e["content"]) != i}
    if wrong:
        raise AssertionError(f"added tokens not at their ids: {list(wrong.items())[:3]}")
    return tok.to_str().encode("utf-8")


cached_tokenizer = lru_cache(maxsize=None)(stand_in_tokenizer)  # LLaDA-8B-Instruct and LLaDA-1.5 share one


def gpt2_tokenizer_json() -> bytes:
    """GPT-2's tokenizer.json from its real vocab.json and merges.txt, built as
    transformers' GPT2Converter does (byte-level BPE, <|endoftext|> special)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    vocab = real_json("gpt2/vocab.json")
    lines = real("gpt2/merges.txt").decode("utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok.to_str().encode("utf-8")


# ---------------------------------------------------------------- families

def _llada_files(folder: str = "llada-8b-instruct", index: dict | None = None) -> dict[str, bytes]:
    from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

    config = shrunk(real_json(f"{folder}/config.json"), **LLADA_WIDTH)
    shapes = meta_shapes(lambda: LLaDANetwork(LLaDAConfig.from_config(config)))
    files = sharded(random_weights(shapes, "bfloat16"), index or real_json(f"{folder}/model.safetensors.index.json"))
    files["config.json"] = dumps(config)
    for name in ("generation_config.json", "special_tokens_map.json", "tokenizer_config.json"):
        files[name] = real(f"{folder}/{name}")
    decoder = real_json(f"{folder}/tokenizer_config.json")["added_tokens_decoder"]
    added = tuple((int(i), tuple((k, entry[k]) for k in ("content", "single_word", "lstrip", "rstrip", "normalized",
                                                         "special"))) for i, entry in decoder.items())
    files["tokenizer.json"] = cached_tokenizer(min(i for i, _ in added), added)
    return files


def llada_module_order(config: dict) -> list[tuple[str, int]]:
    """LLaDA's tensors at the real shapes (bf16 bytes) in modeling_llada.py's module
    order: wte, ln_f, each block (attn_out, ff_out, attn_norm, ff_norm, q/k/v_proj,
    ff_proj, up_proj), then the head ff_out."""
    from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

    shapes = meta_shapes(lambda: LLaDANetwork(LLaDAConfig.from_config(config)))
    t = "model.transformer."
    order = [t + "wte.weight", t + "ln_f.weight"]
    for i in range(config["n_layers"]):
        order += [f"{t}blocks.{i}.{m}.weight" for m in (
            "attn_out", "ff_out", "attn_norm", "ff_norm", "q_proj", "k_proj", "v_proj", "ff_proj", "up_proj")]
    order.append(t + "ff_out.weight")
    if set(order) != set(shapes):
        raise AssertionError("LLaDA's module order does not name every tensor")
    return [(n, 2 * math.prod(shapes[n])) for n in order]


def full_size_index(model_id: str) -> tuple[dict, dict[str, int]]:
    """The stand-in index of a repository whose index is not public, and each
    shard's bytes at the real shapes: save_pretrained's sharding (3 GB for
    LLaDA-1.5, the 5 GB default for LLaDA-MoE) in the upstream module order,
    which gives exactly the shard sizes the Hub lists (see SOURCES.md)."""
    if model_id == "llada-1.5":
        tensors = llada_module_order(real_json("llada-8b-instruct/config.json"))
        index = packed_index(tensors, 6, 3_000_000_000)
    elif model_id == "llada-moe-7b-a1b-instruct":
        from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork

        config = real_json("stand-ins/llada-moe-7b-a1b.config.json")
        # the engine's module order is modeling_lladamoe.py's (an OLMoE layer: attention, mlp, norms)
        shapes = meta_shapes(lambda: LLaDAMoENetwork(LLaDAMoEConfig.from_config(config)))
        tensors = [(n, 2 * math.prod(s)) for n, s in shapes.items()]
        index = packed_index(tensors, 3, 5_000_000_000)
    else:
        raise KeyError(f"{model_id} has a real index")
    nbytes = dict(tensors)
    sizes: dict[str, int] = {}
    for name, shard in index["weight_map"].items():
        sizes[shard] = sizes.get(shard, 0) + nbytes[name]
    return index, sizes


def llada_15_files() -> dict[str, bytes]:
    return _llada_files(index=full_size_index("llada-1.5")[0])


def dream_files() -> dict[str, bytes]:
    from lacuna.engine.models.dream import DreamConfig, DreamNetwork

    folder = "dream-v0-instruct-7b"
    config = shrunk(real_json(f"{folder}/config.json"), **DREAM_WIDTH)
    shapes = meta_shapes(lambda: DreamNetwork(DreamConfig.from_config(config)))
    files = sharded(random_weights(shapes, "bfloat16"), real_json(f"{folder}/model.safetensors.index.json"))
    files["config.json"] = dumps(config)
    for name in ("generation_config.json", "special_tokens_map.json", "tokenizer_config.json",
                 "added_tokens.json", "vocab.json", "merges.txt"):
        files[name] = real(f"{folder}/{name}")
    return files


MOE_ADDED = {156892: "<|endoftext|>", 156893: "<|role_start|>", 156894: "<|role_end|>", 156895: "<|mdm_mask|>"}


def llada_moe_files() -> dict[str, bytes]:
    from lacuna.engine.models.llada_moe import LLaDAMoEConfig, LLaDAMoENetwork

    real_config = real_json("stand-ins/llada-moe-7b-a1b.config.json")
    index = full_size_index("llada-moe-7b-a1b-instruct")[0]
    config = shrunk(real_config, **MOE_WIDTH)
    shapes = meta_shapes(lambda: LLaDAMoENetwork(LLaDAMoEConfig.from_config(config)))
    files = sharded(random_weights(shapes, "bfloat16"), index)
    files["config.json"] = dumps(config)
    entry = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    files["tokenizer.json"] = cached_tokenizer(
        min(MOE_ADDED), tuple((i, tuple({"content": t, **entry}.items())) for i, t in MOE_ADDED.items()))
    specials = {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                "additional_special_tokens": ["<|role_start|>", "<|role_end|>", "<|mdm_mask|>"]}
    files["special_tokens_map.json"] = dumps(specials)
    files["tokenizer_config.json"] = dumps({
        "added_tokens_decoder": {str(i): {"content": t, **entry} for i, t in MOE_ADDED.items()},
        **specials, "clean_up_tokenization_spaces": False, "model_max_length": 8192,
        "tokenizer_class": "PreTrainedTokenizerFast"})
    files["generation_config.json"] = dumps({"_from_model_config": True, "eos_token_id": 156892,
                                             "pad_token_id": 156892, "transformers_version": "4.46.3"})
    return files


def _dit_state(shape, prefix: str = "") -> dict:
    from tests.support.dit_tiny import dit_state

    return {k: v.contiguous() for k, v in dit_state(shape, seed=0, prefix=prefix).items()}


def mdlm_files() -> dict[str, bytes]:
    from safetensors.torch import save

    from lacuna.engine.models.mdlm import shape_from_config

    config = shrunk(real_json("mdlm-owt/config.json"), hidden_dim=DIT_WIDTH["hidden"],
                    n_heads=DIT_WIDTH["n_heads"], cond_dim=DIT_WIDTH["cond_dim"])
    state = _dit_state(shape_from_config(config), prefix="backbone.")  # float32, as mdlm-owt stores it
    return {"config.json": dumps(config), "model.safetensors": save(state, metadata={"format": "pt"})}


def sedd_files() -> dict[str, bytes]:
    import io

    import torch

    from lacuna.engine.models.sedd import shape_from_config

    real_config = real_json("stand-ins/sedd-small.config.json")
    config = {**real_config, "model": shrunk(real_config["model"], hidden_size=DIT_WIDTH["hidden"],
                                             n_heads=DIT_WIDTH["n_heads"], cond_dim=DIT_WIDTH["cond_dim"])}
    state = _dit_state(shape_from_config(config)[0])
    buffer = io.BytesIO()
    torch.save(state, buffer)  # what PyTorchModelHubMixin wrote: a plain state dict, float32
    return {"config.json": dumps(config), "pytorch_model.bin": buffer.getvalue()}


def gpt2_files() -> dict[str, bytes]:
    files = {name: real(f"gpt2/{name}") for name in ("config.json", "vocab.json", "merges.txt",
                                                     "tokenizer_config.json")}
    files["tokenizer.json"] = gpt2_tokenizer_json()
    return files


MODELS = {m.id: m for m in (
    Model("llada-8b-instruct", "GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-8B-Instruct", _llada_files),
    Model("llada-1.5", "GSAI-ML/LLaDA-1.5", "GSAI-ML/LLaDA-1.5", llada_15_files),
    Model("dream-7b-instruct", "Dream-org/Dream-v0-Instruct-7B", "Dream-org/Dream-v0-Instruct-7B", dream_files),
    Model("llada-moe-7b-a1b-instruct", "inclusionAI/LLaDA-MoE-7B-A1B-Instruct",
          "inclusionAI/LLaDA-MoE-7B-A1B-Base", llada_moe_files),
    Model("mdlm-owt", "kuleshov-group/mdlm-owt", "kuleshov-group/mdlm-owt", mdlm_files, companion=GPT2),
    Model("sedd-small", "louaaron/sedd-small", "louaaron/sedd-small", sedd_files, companion=GPT2),
    Model("gpt2-tokenizer", GPT2, GPT2, gpt2_files),
)}


def _placeholder(path: str, size: int) -> bytes:
    head = f"placeholder for {path}: not part of the test data, never fetched by Lacuna\n".encode()
    return (head * (size // len(head) + 1))[:size]


def _fake_sha256(repo: str, path: str) -> str:
    import hashlib

    return hashlib.sha256(f"listed only: {repo}/{path}".encode()).hexdigest()


@lru_cache(maxsize=None)
def hub_repo(model_id: str) -> HubRepo:
    """The repository of catalog model ``model_id`` (or "gpt2-tokenizer") as the Hub serves it."""
    model = MODELS[model_id]
    listing = hub_trees()[model.listing]
    built = model.build()
    invented = sorted(set(built) - set(listing))
    if invented:
        raise AssertionError(f"{model.repo} lists no {invented}: the builder must use the real file names")
    files = dict(built)
    listed: dict[str, int] = {}
    placeholders = set()
    for path, size in listing.items():
        if path in built:
            continue
        if path.endswith(".py") or size <= PLACEHOLDER_LIMIT:
            files[path] = _placeholder(path, size)
            placeholders.add(path)
        else:
            listed[path] = size
    return HubRepo(model.repo, files, frozenset(built), frozenset(placeholders), listed)


def publish(hub, model_id: str) -> list[HubRepo]:
    """Publish ``model_id`` and its companion on the mock Hub; returns them (model first)."""
    model = MODELS[model_id]
    repos = [hub_repo(model_id)] + ([hub_repo("gpt2-tokenizer")] if model.companion else [])
    for r in repos:
        hub.add_repo(r.repo, r.files, listed={p: (s, _fake_sha256(r.repo, p)) for p, s in r.listed.items()})
    return repos

