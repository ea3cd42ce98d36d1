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
* Famous lines: a few well-known lines of the training corpus with one word
  masked (a memorisation check, not held out).

Examples are drawn with a seeded generator from the held-out chunks of the
corpus (see :mod:`.corpus`), so the same model gives the same table.

``python -m engine.training.evaluate MODEL [--heldout FILE] [--examples N] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus import DEFAULT_OUT as _CORPUS

DEFAULT_HELDOUT = _CORPUS / "heldout.jsonl"
DEFAULT_TRAIN = _CORPUS / "train.jsonl"
SPAN_SAMPLERS = ("low_confidence", "margin", "entropy", "random", "threshold")
CONTEXT_BEFORE = 600  # characters of context kept before the span (about 190 tokens)
CONTEXT_AFTER = 240   # and after it
_WORD = re.compile(r"(?<=[ \n])[A-Za-z]+(?:'[a-z]+)?(?=[ \n,.;:!?'\")\]-])")

FAMOUS = (  # as they are written in the corpus
    ('God said, "Let there be light," and there was light.', "light", 0),
    ("In the beginning God created the heavens and the earth.", "earth", 0),
    ("Yahweh is my shepherd: I shall lack nothing.", "shepherd", 0),
    ("To be, or not to be,--that is the question:--", "question", 0),
    ("Now is the winter of our discontent", "winter", 0),
    ("O Romeo, Romeo! wherefore art thou Romeo?", "wherefore", 0),
    ("For God so loved the world, that he gave his one and only Son", "world", 0),
    ("Python is an easy to learn, powerful programming language.", "language", 0),
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
        from .corpus import build
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


def word_examples(texts: list[str], n: int, seed: int = 0) -> list[Example]:
    """``n`` single whole words (letters, optional 's-style suffix), one per
    drawn chunk, each with the space before it and some context around it."""
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
        crop, s, e = _window(t, m.start(), m.end())
        out.append(Example(crop, s, e))
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
    from engine import InfillRequest, Span, stream_infill

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
    from engine import token_count as tc

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


def _find_in_corpus(line: str, train_path: Path) -> str | None:
    if not train_path.exists():
        return None
    with open(train_path, encoding="utf-8") as f:
        for row in f:
            text = json.loads(row)["text"]
            if line in text:
                return text
    return None


def famous_lines(model, train: str | Path | None = None) -> list[dict]:
    """Well-known lines with one word masked, alone and (when the training split
    is at hand) inside the passage of the corpus where they occur."""
    train_path = Path(train) if train else DEFAULT_TRAIN
    rows = []
    for line, word, nth in FAMOUS:
        idx = -1
        for _ in range(nth + 1):
            idx = line.find(word, idx + 1)
        ex = Example(line, idx, idx + len(word))
        res, _ = fill(model, ex, "low_confidence", steps=token_count(model, ex))
        row = {"line": line, "word": word, "fill": res.span_text(0),
               "restored": res.span_text(0).strip() == word}
        passage = _find_in_corpus(line, train_path)
        if passage is not None:
            at = passage.find(line) + idx
            crop, s, e = _window(passage, at, at + len(word))
            ex = Example(crop, s, e)
            res, _ = fill(model, ex, "low_confidence", steps=token_count(model, ex))
            row["fill_in_passage"] = res.span_text(0)
            row["restored_in_passage"] = res.span_text(0).strip() == word
        rows.append(row)
    return rows


def format_famous(rows: list[dict]) -> str:
    out = []
    for f in rows:
        s = f"{'OK' if f['restored'] else '--'} alone: {f['word']!r} -> {f['fill']!r}"
        if "fill_in_passage" in f:
            s += f"; {'OK' if f['restored_in_passage'] else '--'} in its passage: -> {f['fill_in_passage']!r}"
        out.append(f"{s}   ({f['line']})")
    return "\n".join(out)


def sampler_table(model, heldout: str | Path | None = None, examples: int = 200, seed: int = 0,
                  train: str | Path | None = None, samplers=SPAN_SAMPLERS) -> list[dict]:
    """Rows for ``lacuna-cli bench --quality`` and docs/benchmarks.md:
    single-word restore (with the most-frequent-word baseline), then token
    accuracy on 2-8 word spans for each sampler at steps = tokens and tokens/4."""
    texts = load_texts(heldout)
    rows = [single_word(model, word_examples(texts, examples, seed), most_frequent_word(train))]
    spans = span_examples(texts, examples, seed + 1)
    for quarter in (False, True):
        for s in samplers:
            rows.append(multi_word(model, spans, s, quarter))
    return rows


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
    ap.add_argument("--json", default=None, help="write the report here")
    args = ap.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from engine import load_model

    model = load_model(args.model)
    texts = load_texts(args.heldout)
    if args.words_only:
        rows = [single_word(model, word_examples(texts, args.examples, args.seed),
                            most_frequent_word(args.train))]
    else:
        rows = sampler_table(model, args.heldout, args.examples, args.seed, args.train)
    famous = famous_lines(model, args.train)
    print(format_table(rows))
    print(format_famous(famous))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "rows": rows, "famous": famous,
                                               "examples": args.examples, "seed": args.seed}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
