"""End to end on the bundled starter model: meaningful fills, not exact samples."""
import json

import pytest

from engine import InfillRequest, Span, infill, load_model, resources
from engine.cli import main

pytestmark = pytest.mark.skipif(
    not resources.path("models", "starter", "model.safetensors").is_file(),
    reason="the starter model is not in this checkout",
)

# Formulaic lines of the training corpus whose masked word the starter restores greedily.
RESTORED = [
    ("The children of Israel went up out of the land of Egypt.", "Israel"),
    ("Then Jesus said to his disciples, Follow me.", "said"),
]


@pytest.fixture(scope="module")
def starter():
    return load_model("starter", device="cpu", dtype="float32")


@pytest.mark.parametrize("text, word", RESTORED)
def test_a_common_word_in_a_well_known_line_is_restored(starter, text, word):
    i = text.index(word)
    result = infill(starter, InfillRequest(text=text, spans=[Span(i, i + len(word))], steps=4))
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
    code = main(["infill", "--model", "starter", "--device", "cpu", "--dtype", "float32", "--json",
                 "The children of [[Israel]] went up out of the land of Egypt."])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["text"] == "The children of Israel went up out of the land of Egypt."
    assert out["nfe"] >= 1
