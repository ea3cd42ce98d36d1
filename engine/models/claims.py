"""A model folder's claims, checked before anything is parsed by a library or built.

A folder is data from anywhere, so what it says about itself is checked
against what it holds, each refusal one sentence naming the file and the fix:

- every file a loader opens is a regular file (a FIFO blocks its reader
  forever, a device never ends) of a size no real file of its kind exceeds;
- JSON is read by ``read_json`` only: capped in size, parsed by the standard
  library with its recursion turned into a refusal, and no deeper than
  ``MAX_DEPTH`` (no real config nests past a dozen levels);
- config.json's sizes are positive integers within ``SIZE_LIMIT``, its token ids
  are ids and its names strings (so the fit estimate and the families' config
  readers compute on what they expect), and, where safetensors weights are present,
  agree with their headers: no more layers than the weights hold layer
  indices (``n_layers: 1000000`` with tiny widths fits any memory estimate
  while the loader builds a million modules), and no more parameters than
  ``PARAMETER_SLACK`` times what the headers count;
- tokenizer files hold no more entries than the model has rows for: added
  tokens beyond the config's vocabulary size (3,000,000 extra entries took
  tokenizers 88 s and 2.4 GB to load) are refused before any tokenizer parses
  them.

The memory estimate itself stays the loader's (engine.hub.fit through
``loader.check_fit``), fed the parameters counted here.
"""
from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

MIB = 1 << 20
JSON_LIMIT = 16 * MIB  # config.json and the tokenizer's small JSON files: a few KB to a few MB
TOKENIZER_LIMIT = 64 * MIB  # tokenizer.json, vocab and merges files: 0.5-35 MB in real models
MAX_DEPTH = 64
SIZE_LIMIT = 1 << 24  # widths, heads, experts, vocabulary: the largest real ones are near 2**18
# The deepest released transformers have under 200 layers; building 4096 tiny ones on the
# meta device takes about 8 s and 150 MB (1,000,000 would take hours and tens of GB).
LAYER_LIMIT = 4096
PARAMETER_SLACK = 2  # fit's count for a non-native config is an approximation; a lie is orders off

# Files the loaders read, by kind.
JSON_FILES = ("config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "generation_config.json", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model")

# config.json keys engine.hub.fit reads as sizes (top level, or under text_config / llm_config / model).
_SIZE_KEYS = ("hidden_size", "d_model", "n_embd", "hidden_dim", "intermediate_size", "d_ff", "n_inner",
              "mlp_hidden_size", "vocab_size", "embedding_size", "num_attention_heads", "n_heads",
              "num_key_value_heads", "n_kv_heads", "num_experts", "num_experts_per_tok", "expert_intermediate_size",
              "dense_intermediate_size", "shared_expert_intermediate_size", "cond_dim", "tokens")
_PER_LAYER_KEYS = ("moe_layer_freq",)  # one entry per layer
_LAYER_KEYS = ("num_hidden_layers", "n_layers", "n_layer", "num_layers", "n_blocks")
_CONTEXT_KEYS = ("max_position_embeddings", "max_sequence_length", "n_positions", "model_max_length",
                 "model_length")
_NESTED = ("text_config", "llm_config", "model")
# A layer's index in a tensor name: model.layers.3., transformer.blocks.3., encoder.layer.3., h.3., blocks.3.
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|layer|blocks|h)\.(\d+)\.")


@dataclass(frozen=True)
class Claims:
    """What the checks learnt from the safetensors headers (None and empty without
    safetensors weights): ``parameters`` counted, ``layers`` the distinct layer indices,
    ``shapes`` each tensor's shape by name."""

    parameters: int | None
    layers: int | None
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


def read_bytes(path: Path, name: str, limit: int) -> bytes:
    """The bytes of ``path``, or ModelLoadError when it is not a regular file or
    is larger than ``limit``. Opened without blocking, so a FIFO cannot hang it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ModelLoadError(f"{name}: {path.name} cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        _require_regular(name, path, st.st_mode)
        _require_size(name, path, st.st_size, limit)
        data = fh.read(limit + 1)
    _require_size(name, path, len(data), limit)  # it grew while being read
    return data


def read_json(path: Path, name: str, limit: int = JSON_LIMIT) -> Any:
    """A JSON file of a model folder, parsed; ModelLoadError for a special or
    oversized file, invalid JSON, or nesting deeper than MAX_DEPTH."""
    data = read_bytes(path, name, limit)
    try:
        value = json.loads(data)
    except RecursionError:
        raise _too_deep(name, path) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        detail = str(exc).splitlines()[0][:120] if str(exc) else "not JSON"
        raise ModelLoadError(f"{name}: {path.name} is not valid JSON ({detail}); "
                             "download or copy the model again") from None
    if _depth(value) > MAX_DEPTH:
        raise _too_deep(name, path)
    return value


def check_folder(name: str, path: Path, config: dict) -> Claims:
    """Every check above on the folder ``path`` whose config.json is ``config``.

    Raises ModelLoadError naming the first file that fails; returns the Claims."""
    path = Path(path)
    _check_special_files(name, path)
    parsed = {file: read_json(path / file, name) for file in JSON_FILES[1:] if (path / file).exists()}
    sizes = _config_sizes(name, config)
    vocab = sizes.get("vocab_size") or sizes.get("embedding_size") or sizes.get("tokens")
    _check_tokenizer_files(name, path, vocab, parsed)
    layers = sizes.get("layers")
    tensors = _checkpoint(name, path)
    found = Claims(None, None)
    if tensors is not None:
        counted = sum(math.prod(info.shape) for info in tensors.values())
        indices = {int(m.group(1)) for key in tensors for m in [_LAYER_INDEX.search(key)] if m}
        limit = len(indices) if indices else len(tensors)  # a layer has at least one tensor of its own
        if layers is not None and layers > limit:
            held = f"{len(indices):,} layers" if indices else f"{len(tensors):,} tensors"
            raise ModelLoadError(
                f"{name}: config.json says the network has {layers:,} layers, but its weights hold {held}; "
                "the config does not belong to these weights: restore the model's own config.json")
        _check_parameters(name, config, counted)
        found = Claims(counted, len(indices) or None, {k: info.shape for k, info in tensors.items()})
    if layers is not None and layers > LAYER_LIMIT:  # also where the weights cannot tell (a pickle)
        raise ModelLoadError(
            f"{name}: config.json says the network has {layers:,} layers, more than the {LAYER_LIMIT:,} Lacuna "
            "builds (real models have a few dozen): restore the model's own config.json")
    return found


# files -----------------------------------------------------------------------
def _check_special_files(name: str, path: Path) -> None:
    """Refuse any file a loader would open that is not a regular file (stat follows links,
    as the Hugging Face cache's snapshot links to its blobs)."""
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        raise ModelLoadError(f"{name}: the model folder {path} cannot be listed ({exc.strerror or exc})") from None
    for entry in entries:
        if not _read_by_a_loader(entry.name):
            continue
        try:
            mode = os.stat(entry.path).st_mode
        except OSError:
            continue  # a dangling link: the loader that needs the file says it is missing
        _require_regular(name, Path(entry.path), mode)


def _read_by_a_loader(file: str) -> bool:
    return (file in JSON_FILES or file in TOKENIZER_FILES
            or file.endswith((".safetensors", ".bin", ".pt", ".pth", ".model")))


def _require_regular(name: str, path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a file")
    raise ModelLoadError(f"{name}: {path.name} in the model folder is {kind}, not a regular file; "
                         "replace it with the real file")


def _require_size(name: str, path: Path, size: int, limit: int) -> None:
    if size > limit:
        raise ModelLoadError(
            f"{name}: {path.name} is {size / MIB:,.1f} MB, more than the {limit // MIB} MB any real "
            f"{path.name} takes; the folder is damaged or not a model: download or copy the model again")


def _too_deep(name: str, path: Path) -> ModelLoadError:
    return ModelLoadError(f"{name}: {path.name} is nested more than {MAX_DEPTH} levels deep, which no real "
                          f"{path.name} is; download or copy the model again")


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


# config ----------------------------------------------------------------------
def _config_sizes(name: str, config: dict) -> dict[str, int]:
    """The config's sizes, each checked: {key: value} plus "layers" (the largest layer count)."""
    sizes: dict[str, int] = {}
    for scope in [config, *(config[k] for k in _NESTED if isinstance(config.get(k), dict))]:
        for key in _SIZE_KEYS:
            if scope.get(key) is not None:
                sizes.setdefault(key, _size(name, key, scope[key], SIZE_LIMIT))
        for key in _LAYER_KEYS:
            if scope.get(key) is not None:
                sizes["layers"] = max(sizes.get("layers", 0), _size(name, key, scope[key], SIZE_LIMIT))
        for key in _CONTEXT_KEYS + (("length",) if scope is not config else ()):  # SEDD's model.length
            value = scope.get(key)
            if value is not None and not (_whole(value) and value >= 1):
                raise ModelLoadError(f"{name}: config.json gives {key} = {_show(value)}, which is not a length; "
                                     "restore the model's own config.json")
        for key, value in scope.items():
            if key.endswith("_token_id") and value is not None and not _token_ids(value):
                raise ModelLoadError(f"{name}: config.json gives {key} = {_show(value)}, which is not a token id; "
                                     "restore the model's own config.json")
    for key in ("model_type", "architectures"):
        value = config.get(key)
        if not (value is None or (isinstance(value, str) if key == "model_type"
                                  else isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise ModelLoadError(f"{name}: config.json gives {key} = {_show(value)}, which names no model; "
                                 "restore the model's own config.json")
    for key in _PER_LAYER_KEYS:
        value = config.get(key)
        layers = sizes.get("layers")
        if value is not None and not (isinstance(value, list) and all(_whole(v) or isinstance(v, bool) for v in value)
                                      and (layers is None or len(value) == layers)):
            raise ModelLoadError(f"{name}: config.json gives {key} = {_show(value)}, which is not one entry for each "
                                 f"of its {layers} layers; restore the model's own config.json")
    return sizes


def _size(name: str, key: str, value: Any, limit: int) -> int:
    if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit):
        raise ModelLoadError(f"{name}: config.json gives {key} = {_show(value)}; a size must be a whole number "
                             f"from 1 to {limit:,}: restore the model's own config.json")
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_ids(value: Any) -> bool:
    """An id (0 <= id < SIZE_LIMIT), or a list of them (eos_token_id in some configs)."""
    values = value if isinstance(value, list) and value else [value]
    return all(_whole(v) and 0 <= v < SIZE_LIMIT for v in values)


def _show(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def network_shape(name: str, config: dict, parameters: int | None = None):
    """lacuna.engine.hub.fit's Shape for ``config`` (None when it cannot tell), or ModelLoadError when
    the config's sizes cannot be combined at all (the loader's fit check calls this too)."""
    from ..hub import fit

    try:
        return fit.shape_from_config(config, parameters)
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{name}: config.json has sizes that form no network ({_reason(exc)}); "
                             "restore the model's own config.json") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:100] if str(exc) else ""
    return text or "inconsistent sizes"


def _check_parameters(name: str, config: dict, counted: int) -> None:
    shape = network_shape(name, config)
    if shape is None or not counted:
        return
    if shape.parameters > PARAMETER_SLACK * counted + (1 << 20):
        raise ModelLoadError(
            f"{name}: config.json describes a network of about {_count(shape.parameters)} parameters, but its "
            f"weights hold {_count(counted)}; the config does not belong to these weights: "
            "restore the model's own config.json")


def _count(n: int) -> str:
    for unit, scale in (("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return str(n)


# weights ---------------------------------------------------------------------
def _checkpoint(name: str, path: Path):
    """name -> TensorInfo from the safetensors headers, or None when the folder has no
    safetensors weights (the loader then refuses or converts a pickle, as it does)."""
    from .weights import checkpoint_tensors

    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").exists():
        return None
    try:
        return checkpoint_tensors(path)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{name}: cannot load the weights: {exc}") from None


# tokenizer -------------------------------------------------------------------
def _check_tokenizer_files(name: str, path: Path, vocab: int | None, parsed: dict[str, Any]) -> None:
    """The size of every tokenizer file, and its entry counts against ``vocab`` rows;
    ``parsed``: the small JSON files already read."""
    # a vocabulary may list a few more entries than the embedding has rows, never several times as many
    most = 2 * vocab + 1024 if vocab is not None else None
    for file in TOKENIZER_FILES:
        target = path / file
        if not target.exists():
            continue
        if not file.endswith(".json"):
            _require_size(name, target, target.stat().st_size, TOKENIZER_LIMIT)
            continue
        data = read_json(target, name, TOKENIZER_LIMIT)
        if vocab is None or not isinstance(data, dict):
            continue
        if file == "tokenizer.json":
            _check_entries(name, target, "added tokens", data.get("added_tokens"), vocab, vocab)
            model = data.get("model")
            _check_entries(name, target, "vocabulary entries", model.get("vocab") if isinstance(model, dict)
                           else None, most, vocab)
        else:  # vocab.json
            _check_entries(name, target, "vocabulary entries", data, most, vocab)
    if vocab is None:
        return
    for file, key in (("tokenizer_config.json", "added_tokens_decoder"), ("added_tokens.json", None)):
        if file in parsed:
            data = parsed[file]
            entries = data.get(key) if key and isinstance(data, dict) else data
            _check_entries(name, path / file, "added tokens", entries, vocab, vocab)


def _check_entries(name: str, path: Path, what: str, entries: Any, most: int, vocab: int) -> None:
    if isinstance(entries, (list, dict)) and len(entries) > most:
        raise ModelLoadError(
            f"{name}: {path.name} has {len(entries):,} {what} for a model of {vocab:,} tokens, so it is not "
            "this model's tokenizer: copy the model's own tokenizer files")
