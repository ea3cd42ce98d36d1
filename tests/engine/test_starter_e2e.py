"""End to end on the bundled starter: an LLaDA in the official layout, run by
the native LLaDA family; the fills asserted are what the model really does."""
import json

import pytest

from lacuna.engine import InfillRequest, Span, infill, load_model, resources, token_count
from lacuna.engine.cli import main

FOLDER = resources.path("models", "starter")
pytestmark = pytest.mark.skipif(
    not (FOLDER / "model.safetensors").is_file(),
    reason="the starter model is not in this checkout",
)

# Sentences of the held-out split (never trained on) whose masked word the
# starter restores greedily with steps = tokens, with and without the cache.
# What it restores is mostly function words: it restores 18.9% of 1,000
# held-out single words and none of the twenty well-known lines of
# engine.bench.restore.FAMOUS (docs/benchmarks.md).
RESTORED = [
    ("For example, you can add cross-file references in a portable way (which works for all output types) "
     "using the ref role.", "can"),
    ("Use the source-specific Fortran_PREPROCESS property if a single file needs to be preprocessed.", "the"),
    ("Our new Cabinet-level Domestic Council Committee on Aging has these recommendations at the top of its "
     "agenda.", "of"),
]


@pytest.fixture(scope="module")
def starter():
    return load_model("starter", device="cpu", dtype="float32")


def test_the_starter_is_an_llada_in_the_official_layout(starter):
    from safetensors import safe_open

    config = json.loads((FOLDER / "config.json").read_text())
    assert config["model_type"] == "llada" and config["architectures"] == ["LLaDAModelLM"]
    assert config["max_sequence_length"] >= 512
    with safe_open(str(FOLDER / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    layer = "model.transformer.blocks.0."
    assert {"model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight",
            *(layer + n + ".weight" for n in ("q_proj", "k_proj", "v_proj", "attn_out", "attn_norm",
                                               "ff_norm", "ff_proj", "up_proj", "ff_out"))} <= names
    assert starter.family == "llada" and starter.default_cache == "dual"
    assert starter.tokenizer.convert_ids_to_tokens(starter.mask_id) == "<|mdm_mask|>"  # LLaDA-8B's mask token
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) <= 40 * 2**20


@pytest.mark.parametrize("cache", ["none", "dual"])
@pytest.mark.parametrize("text, word", RESTORED)
def test_a_word_is_restored_with_and_without_the_cache(starter, text, word, cache):
    i = text.index(word)
    steps = token_count(starter, text, i, i + len(word))
    req = InfillRequest(text=text, spans=[Span(i, i + len(word))], steps=steps, cache=cache)
    result = infill(starter, req)
    assert result.span_text(0).strip() == word
    assert result.text == text


def test_sampled_fills_keep_the_text_and_vary_with_the_seed(starter):
    text = "And God said, Let there be light: and there was light."
    i = text.index("Let")
    fills = set()
    for seed in range(4):
        req = InfillRequest(text=text, spans=[Span(i, i, length=4)], steps=4, temperature=1.0, seed=seed)
        result = infill(starter, req)
        s = result.spans[0]
        assert result.text[: s.start] == text[:i] and result.text[s.end :] == text[i:]
        fills.add(result.span_text(0))
    assert len(fills) > 1


def test_cli_restores_a_word_offline(capsys):
    text, word = RESTORED[0]
    i = text.index(word)
    marked = f"{text[:i]}[[{word}]]{text[i + len(word):]}"
    code = main(["infill", "--model", "starter", "--device", "cpu", "--dtype", "float32", "--json", marked])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["text"] == text
    assert out["nfe"] >= 1
