"""Held-out quality of a masked-diffusion model, through the engine's public API.

* Single-word restore: one whole word of held-out text is masked (``Span``
  over the word's characters, ``length=None`` so it gets its token count), and
  filled greedily (``low_confidence``, temperature 0) with steps = its token
  count; exact match of the word. Baseline: always answer the most frequent
  word of the training split (for byte-level BPE this is also the most
  frequent token, `` the``).
* Multi-word spans (2 to 8 words): token accuracy of the fill against the
  original tokens, for several samplers, with steps = span tokens and steps =
  a quarter of that (at least 1).
* Well-known lines: a few well-known lines of texts outside the corpus and
  plain modern sentences, one word masked each (checked not to occur in the
  training split).

Examples are drawn with a seeded generator from the held-out chunks of the
corpus (see :mod:`.corpus`), so the same model gives the same table.

``python -m lacuna.engine.bench.restore MODEL [--heldout FILE] [--examples N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import platformdirs

# training/corpus.py builds the corpus here (its DEFAULT_OUT)
_CORPUS = Path(platformdirs.user_cache_dir("lacuna")) / "corpus"

DEFAULT_HELDOUT = _CORPUS / "heldout.jsonl"
DEFAULT_TRAIN = _CORPUS / "train.jsonl"
SPAN_SAMPLERS = ("low_confidence", "margin", "entropy", "random", "threshold")
CONTEXT_BEFORE = 600  # characters of context kept before the span (about 150 tokens)
CONTEXT_AFTER = 240   # and after it (the first starter's window, so the figures compare)
_WORD = re.compile(r"(?<=[ \n])[A-Za-z]+(?:'[a-z]+)?(?=[ \n,.;:!?'\")\]-])")

# Well-known lines of texts outside the corpus, and plain modern sentences,
# each with one word to restore; famous_lines checks that none of them is in
# the training split.
FAMOUS = (
    ("It was the best of times, it was the worst of times.", "worst"),
    ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
     "must be in want of a wife.", "wife"),
    ("All happy families are alike; each unhappy family is unhappy in its own way.", "family"),
    ("The quick brown fox jumps over the lazy dog.", "dog"),
    ("Twinkle, twinkle, little star, how I wonder what you are.", "star"),
    ("Once upon a time there lived a king and a queen who had no children.", "time"),
    ("Thank you for your letter. I will write back as soon as I can.", "letter"),
    ("Please enter your password to continue.", "password"),
    ("An apple a day keeps the doctor away.", "doctor"),
    ("Actions speak louder than words.", "words"),
    ("The early bird catches the worm.", "bird"),
    ("Practice makes perfect.", "perfect"),
    ("A journey of a thousand miles begins with a single step.", "miles"),
    ("Honesty is the best policy.", "best"),
    ("The pen is mightier than the sword.", "sword"),
    ("Where there is a will, there is a way.", "way"),
    ("Don't judge a book by its cover.", "book"),
    ("Good morning! How are you today?", "morning"),
    ("The meeting has been moved to Tuesday afternoon.", "meeting"),
    ("I would like a cup of tea, please.", "cup"),
)


@dataclass(frozen=True)
class Example:
    text: str
    start: int
    end: int

    @property
    def target(self) -> str:
        return self.text[self.start:self.end]


def load_texts(path: str | Path | None = None) -> list[str]:
    """Held-out texts: a .jsonl of {"text": ...} chunks, or a plain text file
    (paragraphs separated by blank lines)."""
    path = Path(path) if path else DEFAULT_HELDOUT
    if not path.exists() and path == DEFAULT_HELDOUT:
        from ..corpus import build
        build(path.parent)
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]
    text = path.read_text(encoding="utf-8")
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _window(text: str, start: int, end: int) -> tuple[str, int, int]:
    """Crop ``text`` to about CONTEXT_BEFORE/AFTER characters around [start, end),
    cutting at whitespace; returns the crop and the span's offsets in it."""
    a = max(0, start - CONTEXT_BEFORE)
    if a > 0:
        sp = text.find(" ", a)
        a = sp + 1 if 0 <= sp < start - 1 else a
    b = min(len(text), end + CONTEXT_AFTER)
    if b < len(text):
        sp = text.rfind(" ", end, b)
        b = sp if sp > end else b
    return text[a:b], start - a, end - a


def word_examples(texts: list[str], n: int, seed: int = 0, crop: bool = True) -> list[Example]:
    """``n`` single whole words (letters, optional 's-style suffix), one per
    drawn chunk, each with the space before it and some context around it
    (``crop=False``: the whole chunk)."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    order = rng.permutation(len(texts))
    i = 0
    while len(out) < n and i < 20 * max(1, n):
        t = texts[order[i % len(order)]]
        i += 1
        words = list(_WORD.finditer(t))
        if not words:
            continue
        m = words[int(rng.integers(len(words)))]
        if t[m.start() - 1] != " ":
            continue
        out.append(Example(*_window(t, m.start(), m.end())) if crop else Example(t, m.start(), m.end()))
    return out


def span_examples(texts: list[str], n: int, seed: int = 1, min_words: int = 2,
                  max_words: int = 8) -> list[Example]:
    """``n`` runs of ``min_words``..``max_words`` space-separated words on one line."""
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    order = rng.permutation(len(texts))
    i = 0
    while len(out) < n and i < 20 * max(1, n):
        t = texts[order[i % len(order)]]
        i += 1
        k = int(rng.integers(min_words, max_words + 1))
        starts = [m.start() for m in re.finditer(r"(?<= )\S", t)]
        if len(starts) <= k:
            continue
        j = int(rng.integers(len(starts) - k))
        s = starts[j]
        # end of the k-th word from s
        pos = s
        ok = True
        for w in range(k):
            m = re.compile(r"\S+").match(t, pos)
            if m is None:
                ok = False
                break
            pos = m.end()
            if w < k - 1:
                if t[pos:pos + 1] != " ":
                    ok = False
                    break
                pos += 1
        if not ok:
            continue
        crop, cs, ce = _window(t, s, pos)
        out.append(Example(crop, cs, ce))
    return out


def most_frequent_word(train_path: str | Path | None = None, limit_chars: int = 5_000_000) -> str:
    """The most frequent word (same word pattern as the examples) of the training split."""
    path = Path(train_path) if train_path else DEFAULT_TRAIN
    counts: Counter[str] = Counter()
    seen = 0
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)["text"] if path.suffix == ".jsonl" else line
                counts.update(m.group(0) for m in _WORD.finditer(t))
                seen += len(t)
                if seen > limit_chars:
                    break
    return counts.most_common(1)[0][0] if counts else "the"


def _original_ids(model, ex: Example) -> list[int]:
    """The span's original tokens as the engine masks them: a space just before
    the span travels with its first token (byte-level BPE)."""
    src = ex.target
    if ex.start > 0 and ex.text[ex.start - 1] == " ":
        src = " " + src
    return list(model.tokenizer.encode(src, add_special_tokens=False))


def fill(model, ex: Example, sampler: str, steps: int, seed: int = 0):
    """Run one infill; returns (result, committed token ids in slot order)."""
    from lacuna.engine import InfillRequest, Span, stream_infill

    req = InfillRequest(text=ex.text, spans=[Span(ex.start, ex.end)], steps=steps,
                        sampler=sampler, temperature=0.0, seed=seed)
    ids: dict[int, int] = {}
    result = None
    for ev in stream_infill(model, req):
        for c in ev.committed:
            ids[c.index] = c.token_id
        if getattr(ev, "done", False):
            result = ev.result
    return result, [ids[k] for k in sorted(ids)]


def token_count(model, ex: Example) -> int:
    from lacuna.engine import token_count as tc

    return int(tc(model, ex.text, ex.start, ex.end))


def single_word(model, examples: list[Example], baseline_word: str | None = None,
                sampler: str = "low_confidence") -> dict:
    hits = base = 0
    n = 0
    t0 = time.perf_counter()
    for ex in examples:
        k = token_count(model, ex)
        res, _ = fill(model, ex, sampler, steps=k)
        n += 1
        hits += res.span_text(0).strip() == ex.target
        base += baseline_word is not None and ex.target == baseline_word
    return {"task": "single word", "sampler": sampler, "steps": "tokens", "n": n,
            "exact": hits / max(1, n), "baseline_exact": base / max(1, n) if baseline_word else None,
            "baseline_word": baseline_word, "seconds": round(time.perf_counter() - t0, 1)}


def multi_word(model, examples: list[Example], sampler: str, quarter: bool) -> dict:
    correct = total = exact = n = 0
    t0 = time.perf_counter()
    for ex in examples:
        orig = _original_ids(model, ex)
        k = token_count(model, ex)
        if k != len(orig):  # the engine tokenised it differently; skip rather than guess
            continue
        steps = max(1, k // 4) if quarter else k
        res, got = fill(model, ex, sampler, steps=steps)
        n += 1
        total += k
        correct += sum(a == b for a, b in zip(orig, got))
        exact += res.span_text(0) == ex.target
    return {"task": "2-8 words", "sampler": sampler, "steps": "tokens/4" if quarter else "tokens",
            "n": n, "token_acc": correct / max(1, total), "exact": exact / max(1, n),
            "seconds": round(time.perf_counter() - t0, 1)}


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    start: int
    length: int


def _encode_example(tok, ex: Example, context: int) -> _Encoded:
    """Token ids of an example's text with the word's tokens at [start, start+length),
    cropped to ``context`` tokens around them. The space before the word travels with it."""
    a = ex.start - 1 if ex.start > 0 and ex.text[ex.start - 1] == " " else ex.start
    pre = tok.encode(ex.text[:a], add_special_tokens=False).ids
    mid = tok.encode(ex.text[a:ex.end], add_special_tokens=False).ids
    post = tok.encode(ex.text[ex.end:], add_special_tokens=False).ids
    room = max(0, context - len(mid))
    keep_pre = min(len(pre), max(room - len(post), room // 2))
    pre = pre[len(pre) - keep_pre:]
    post = post[:max(0, room - len(pre))]
    return _Encoded(pre + mid + post, len(pre), len(mid))


def network_word_restore(net, tok, examples: list[Example], context: int, mask_id: int) -> dict:
    """Single-word restore with a bare network (no engine): the word's tokens
    masked, then filled greedily one token per step, most confident first
    (LLaDA's ``low_confidence`` remasking with steps = tokens). Used to compare
    pilot runs before a model folder exists.

    Returns {"restore": exact-restore rate, "word_nll": mean over words of the
    summed negative log-likelihood (nats) of the word's tokens with all of them
    masked}: the second is a finer signal while restores are rare."""
    import torch

    hits = 0
    nll = 0.0
    net.eval()
    with torch.no_grad():
        for ex in examples:
            e = _encode_example(tok, ex, context)
            x = torch.tensor([e.ids])
            target = x[0, e.start:e.start + e.length].clone()
            x[0, e.start:e.start + e.length] = mask_id
            for step in range(e.length):
                masked = (x[0] == mask_id).nonzero().squeeze(1)
                logp = net(x, logits_at=masked)[0].float().log_softmax(-1)
                if step == 0:
                    nll -= float(logp.gather(1, target[:, None]).sum())
                conf, tok_ids = logp.max(-1)
                j = int(conf.argmax())
                x[0, masked[j]] = tok_ids[j]
            hits += bool(torch.equal(x[0, e.start:e.start + e.length], target))
    n = max(1, len(examples))
    return {"restore": hits / n, "word_nll": nll / n}


def lines_in_corpus(lines: list[str], train_path: Path) -> set[str]:
    """Those of ``lines`` that occur in a .jsonl split, verbatim but for the
    closing punctuation ("Rome was not built in a day!" counts)."""
    found: set[str] = set()
    bare = {line: line.rstrip(".!?;:,") for line in lines}
    if train_path.exists():
        with open(train_path, encoding="utf-8") as f:
            for row in f:
                text = json.loads(row)["text"]
                found.update(line for line in lines if bare[line] in text)
    return found


def famous_lines(model, train: str | Path | None = None) -> list[dict]:
    """:data:`FAMOUS` with one word masked each, filled greedily (steps =
    tokens); ``in_training_split`` says whether the line occurs verbatim in
    the training split (when it is at hand)."""
    train_path = Path(train) if train else DEFAULT_TRAIN
    seen = lines_in_corpus([line for line, _ in FAMOUS], train_path)
    rows = []
    for line, word in FAMOUS:
        idx = line.find(word)
        ex = Example(line, idx, idx + len(word))
        res, _ = fill(model, ex, "low_confidence", steps=token_count(model, ex))
        rows.append({"line": line, "word": word, "fill": res.span_text(0),
                     "restored": res.span_text(0).strip() == word, "in_training_split": line in seen})
    return rows


def format_famous(rows: list[dict]) -> str:
    out = []
    for f in rows:
        seen = " [in the training split]" if f.get("in_training_split") else ""
        out.append(f"{'OK' if f['restored'] else '--'} {f['word']!r} -> {f['fill']!r}   ({f['line']}){seen}")
    return "\n".join(out)


def row_specs(samplers=SPAN_SAMPLERS) -> list[tuple]:
    """The rows of :func:`sampler_table`, in order: ("word",), then ("span", sampler, quarter)."""
    return [("word",)] + [("span", s, quarter) for quarter in (False, True) for s in samplers]


def sampler_table(model, heldout: str | Path | None = None, examples: int = 200, seed: int = 0,
                  train: str | Path | None = None, samplers=SPAN_SAMPLERS, only: list[int] | None = None
                  ) -> list[dict]:
    """Rows for ``lacuna-cli bench --quality`` and docs/benchmarks.md:
    single-word restore (with the most-frequent-word baseline), then token
    accuracy on 2-8 word spans for each sampler at steps = tokens and tokens/4.
    ``only``: indices into :func:`row_specs` to compute (default all)."""
    texts = load_texts(heldout)
    specs = row_specs(samplers)
    rows = []
    spans = None
    for i, spec in enumerate(specs):
        if only is not None and i not in only:
            continue
        if spec[0] == "word":
            rows.append(single_word(model, word_examples(texts, examples, seed), most_frequent_word(train)))
        else:
            spans = spans if spans is not None else span_examples(texts, examples, seed + 1)
            rows.append(multi_word(model, spans, spec[1], spec[2]))
    return rows


def parallel_table(argv: list[str], jobs: int) -> list[dict]:
    """Every row of :func:`sampler_table`, each computed by ``python -m
    engine.bench.restore ARGV --row I`` in its own process (own session),
    at most ``jobs`` at a time; rows in order."""
    import subprocess
    import sys
    import tempfile

    n = len(row_specs())
    with tempfile.TemporaryDirectory() as tmp:
        out = [Path(tmp) / f"row{i}.json" for i in range(n)]
        running: list[subprocess.Popen] = []
        for i in range(n):
            while len(running) >= jobs:
                running.pop(0).wait()
            running.append(subprocess.Popen(
                [sys.executable, "-m", "lacuna.engine.bench.restore", *argv, "--row", str(i), "--json", str(out[i])],
                start_new_session=True, stdout=subprocess.DEVNULL))
        for p in running:
            p.wait()
        return [json.loads(o.read_text())["rows"][0] for o in out]


def format_table(rows: list[dict]) -> str:
    """A markdown table of :func:`sampler_table` rows."""
    lines = ["| task | sampler | steps | n | exact | token acc | baseline | seconds |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = r.get("baseline_exact")
        base_s = f"{100 * base:.1f}% ('{r.get('baseline_word')}')" if base is not None else ""
        tacc = r.get("token_acc")
        lines.append(f"| {r['task']} | {r['sampler']} | {r['steps']} | {r['n']} | {100 * r['exact']:.1f}% | "
                     f"{'' if tacc is None else f'{100 * tacc:.1f}%'} | {base_s} | {r.get('seconds', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Held-out quality of a model (engine API).")
    ap.add_argument("model", help="model folder, or a catalog id such as 'starter'")
    ap.add_argument("--heldout", default=None)
    ap.add_argument("--train", default=None, help="training split (for the baseline word)")
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--words-only", action="store_true", help="only single-word restore and famous lines")
    ap.add_argument("--dtype", default=None, help="e.g. float32 (default: the loader's choice)")
    ap.add_argument("--jobs", type=int, default=1, help="compute the rows in this many processes at once")
    ap.add_argument("--row", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="write the report here")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from lacuna.engine import load_model

    if args.jobs > 1 and args.row is None and not args.words_only:
        argv = list(sys.argv[1:] if argv is None else argv)
        child = [a for i, a in enumerate(argv) if a != "--jobs" and (i == 0 or argv[i - 1] != "--jobs")]
        child = [a for i, a in enumerate(child) if a != "--json" and (i == 0 or child[i - 1] != "--json")]
        rows = parallel_table(child, args.jobs)
        model = load_model(args.model, dtype=args.dtype)
    else:
        model = load_model(args.model, dtype=args.dtype)
        texts = load_texts(args.heldout)
        if args.words_only:
            rows = [single_word(model, word_examples(texts, args.examples, args.seed),
                                most_frequent_word(args.train))]
        else:
            rows = sampler_table(model, args.heldout, args.examples, args.seed, args.train,
                                 only=None if args.row is None else [args.row])
    if args.row is not None:
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows}))
        return 0
    famous = famous_lines(model, args.train)
    print(format_table(rows))
    print(format_famous(famous))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows, "famous": famous,
                                               "examples": args.examples, "seed": args.seed}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
