"""Tiny random LLaDA and Dream in the Instruct layouts: the tiny models of
tests.support.tiny_llada / tiny_dream with the REAL chat templates of
LLaDA-8B-Instruct and Dream-v0-Instruct-7B (tests/data/real_checkpoints) in
their tokenizer_config.json, and the control tokens those templates write."""
from __future__ import annotations

import json
from pathlib import Path

from tests.support.real_checkpoints import real, real_json
from tests.support.tiny_dream import build_tiny_dream
from tests.support.tiny_llada import build_tiny_llada

# The control tokens LLaDA's template writes that the tiny LLaDA lacks.
LLADA_HEADERS = ("<|start_header_id|>", "<|end_header_id|>")


def real_template(folder: str) -> str:
    return real_json(f"{folder}/tokenizer_config.json")["chat_template"]


def build_tiny_llada_instruct(out: Path, seed: int = 0, **shape) -> Path:
    """The tiny LLaDA with LLaDA-8B-Instruct's chat template and header tokens
    (special added tokens after the trained vocabulary, inside the embedding's
    padding); ``shape`` overrides config keys as in build_tiny_llada."""
    from tokenizers import AddedToken, Tokenizer

    out = build_tiny_llada(Path(out), seed=seed, **shape)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in LLADA_HEADERS])
    config = json.loads((out / "config.json").read_text())
    assert tok.get_vocab_size() <= config["embedding_size"], "the header tokens must fit the embedding"
    tok.save(str(out / "tokenizer.json"))
    _add_template(out, real_template("llada-8b-instruct"))
    return out


def build_tiny_dream_instruct(out: Path, seed: int = 0) -> Path:
    """The tiny Dream (its added tokens include <|im_start|> and <|im_end|>) with
    Dream-v0-Instruct-7B's chat template."""
    out = build_tiny_dream(Path(out), seed=seed)
    _add_template(out, real_template("dream-v0-instruct-7b"))
    return out


def _add_template(out: Path, template: str) -> None:
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def real_dream_tokenizers(out: Path):
    """(Lacuna's tokenizer, transformers' tokenizer) of Dream-v0-Instruct-7B
    from its real vocab.json, merges.txt and tokenizer_config.json.

    Lacuna's is built as its Dream loader builds it (qwen2_backend, then
    load_tokenizer); transformers' is its own Qwen2Tokenizer read from the
    same files (tokenizer_class set to it, auto_map dropped: the real one
    names tokenization_dream.py, remote code), so the two share nothing but the files."""
    from transformers import AutoTokenizer

    from lacuna.engine.models import dream, native

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json"):
        (out / name).write_bytes(real(f"dream-v0-instruct-7b/{name}"))
    config = real_json("dream-v0-instruct-7b/tokenizer_config.json")
    config.pop("auto_map")
    config["tokenizer_class"] = "Qwen2Tokenizer"
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    model_config = real_json("dream-v0-instruct-7b/config.json")
    ours = native.load_tokenizer(out, model_config, "Dream-v0-Instruct-7B", model_config["max_position_embeddings"],
                                 backend=dream.qwen2_backend(out, "Dream-v0-Instruct-7B"))
    return ours, AutoTokenizer.from_pretrained(str(out))


def reference_tokenizer(folder: str):
    """A transformers tokenizer carrying ``folder``'s real chat template and special
    tokens over a throwaway vocabulary: enough for apply_chat_template(tokenize=False)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    config = real_json(f"{folder}/tokenizer_config.json")
    specials = {k: config[k] for k in ("bos_token", "eos_token", "pad_token", "mask_token") if config.get(k)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()), chat_template=config["chat_template"],
                                   **specials)


def bench_main(repeats: int = 9) -> None:
    """Print engine.instruct.bench on the tiny Instruct models and on a wider
    LLaDA (d_model 256, 4 layers), whose forward pass outweighs the sampler's
    own overhead (a measurement, not a test: shared machines time noisily)."""
    import os
    import tempfile

    from lacuna.engine import InfillRequest, Span, instruct, load_model

    text = ("The committee met on Tuesday to review the budget. Everyone agreed that the numbers were "
            "too high, so the chair asked for a new draft by Friday. The meeting ended early.")
    start = text.index("so the chair")
    end = text.index(" by Friday")
    request = InfillRequest(text=text, spans=(Span(start, end),), steps=8, seed=0)
    wide = {"d_model": 256, "n_layers": 4, "n_heads": 8, "n_kv_heads": 8, "mlp_hidden_size": 1024}
    builds = (("tiny LLaDA-Instruct layout", build_tiny_llada_instruct, {}),
              ("tiny Dream-Instruct layout", build_tiny_dream_instruct, {}),
              ("wider LLaDA-Instruct layout (d_model 256, 4 layers)", build_tiny_llada_instruct, wide))
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, build, shape) in enumerate(builds):
            folder = build(Path(tmp) / str(k), **shape)
            model = load_model(str(folder), device="cpu", dtype="float32")
            template = instruct.require_chat_template(folder)
            figures = instruct.bench(model, request, "Make this more formal.", template, repeats=repeats)
            print(f"{label}, {request.steps} steps, median of {repeats} ({os.cpu_count()} CPUs):")
            for name, row in figures.items():
                print(" ", name, " ".join(f"{key}={value:.4g}" for key, value in row.items()))


if __name__ == "__main__":
    bench_main()
