"""Auto length against a fixed-length mask, on the starter's held-out split (issue 23).

For each held-out example (engine.bench.restore: single words and spans of
2-8 words, the model card's seeds), greedy ``low_confidence`` with steps = the
covered text's token count:

- fixed: today's mask, the covered text's own token count (the right length,
  known in advance);
- auto: ``engine.length.infill_auto`` over the proposed lengths (which include
  that count), ranked by each score (ELBO bound or the run's own path
  confidence) and each length normalisation alpha, all from the same runs.

Reported: exact restores, how often the chosen length equals the original's
token count, how often any tried length restored (the ranking's ceiling), the
lengths chosen, forward passes and seconds of auto against one fixed run (in
the same process, interleaved, with the load average: the machine may be
shared), and, with ``--eos``, LLaDA-style EOS padding
(``engine.length.infill_eos_padded``) on the single words.

``python -m lacuna.engine.bench.length [MODEL] [--words N] [--spans N] [--eos N] [--threads T] [--json OUT]``
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

RANKINGS = (("elbo", 1.0), ("elbo", 0.5), ("elbo", 0.0), ("path", 1.0), ("path", 0.5), ("path", 0.0))
DEFAULT_MODEL = "resources/models/starter"


def _rank(choices, score: str, alpha: float):
    """The best LengthChoice under another ranking of the same runs."""
    def key(c):
        raw = c.bound if score == "elbo" else c.path
        return (-(raw / c.length ** alpha), c.length)
    return min(choices, key=key)


def _restored(text: str, target: str, word: bool) -> bool:
    return text.strip() == target if word else text == target


def measure(model, examples, word: bool, samples: int, window: int | None) -> dict:
    """Fixed against auto on ``examples``; every ranking's figures from one set of runs."""
    from lacuna.engine import InfillRequest, Span, infill
    from lacuna.engine.length import infill_auto

    n = 0
    fixed_hits = 0
    hits = Counter()
    same_length = Counter()
    chosen = {r: Counter() for r in RANKINGS}
    ceiling = 0
    original_in = 0
    t_fixed = t_auto = 0.0
    nfe_fixed = nfe_auto = runs = scoring_nfe = 0
    t_scoring = 0.0
    shortest = chance = 0.0
    records = []
    for ex in examples:
        target = ex.target
        k = _own_count(model, ex)
        req = InfillRequest(text=ex.text, spans=[Span(ex.start, ex.end)], steps=k, sampler="low_confidence",
                            temperature=0.0)
        t = time.perf_counter()
        fixed = infill(model, req)
        t_fixed += time.perf_counter() - t
        t = time.perf_counter()
        auto = infill_auto(model, req, samples=samples, window=window)
        t_auto += time.perf_counter() - t
        n += 1
        nfe_fixed += fixed.nfe
        nfe_auto += auto.nfe
        runs += auto.runs
        scoring_nfe += auto.scoring_nfe
        t_scoring += auto.scoring_seconds
        fixed_hits += _restored(fixed.span_text(0), target, word)
        tried = auto.choices[0].ranked
        lengths = sorted(c.length for c in tried)
        original_in += k in lengths
        # what a ranking that knew nothing would score: the shortest length, or one at random
        shortest += lengths[0] == k
        chance += (k in lengths) / len(lengths)
        ceiling += any(_restored(c.result.span_text(0), target, word) for c in tried)
        for r in RANKINGS:
            best = _rank(tried, *r)
            hits[r] += _restored(best.result.span_text(0), target, word)
            same_length[r] += best.length == k
            chosen[r][best.length - k] += 1
        records.append({"original": k, "tried": lengths, "fixed_exact": _restored(fixed.span_text(0), target, word),
                        "bound": {c.length: c.bound for c in tried}, "path": {c.length: c.path for c in tried},
                        "restores": {c.length: _restored(c.result.span_text(0), target, word) for c in tried}})
    return {
        "n": n,
        "fixed_exact": fixed_hits / max(1, n),
        "auto_exact": {f"{s} alpha={a}": hits[(s, a)] / max(1, n) for s, a in RANKINGS},
        "chosen_equals_original": {f"{s} alpha={a}": same_length[(s, a)] / max(1, n) for s, a in RANKINGS},
        "chosen_minus_original": {f"{s} alpha={a}": dict(sorted(chosen[(s, a)].items())) for s, a in RANKINGS},
        "any_tried_length_restores": ceiling / max(1, n),
        "original_length_tried": original_in / max(1, n),
        "shortest_tried_is_original": shortest / max(1, n),
        "random_pick_is_original": chance / max(1, n),
        "runs_per_example": runs / max(1, n),
        "nfe_fixed": nfe_fixed, "nfe_auto": nfe_auto, "nfe_auto_scoring": scoring_nfe,
        "seconds_fixed": round(t_fixed, 2), "seconds_auto": round(t_auto, 2),
        "seconds_auto_scoring": round(t_scoring, 2),
        "time_ratio": round(t_auto / max(t_fixed, 1e-9), 2),
        # the path score needs no scoring pass: auto's runs alone
        "time_ratio_path": round((t_auto - t_scoring) / max(t_fixed, 1e-9), 2),
        "examples": records,
    }


def _own_count(model, ex) -> int:
    from lacuna.engine import token_count

    return int(token_count(model, ex.text, ex.start, ex.end))


def measure_eos(model, examples, word: bool) -> dict:
    """EOS padding with a budget of the largest proposed length: restores, and where the model put EOS."""
    from lacuna.engine import InfillRequest, Span
    from lacuna.engine.length import infill_eos_padded, lengths_for

    n = hits = same = with_eos = inner = empty = 0
    for ex in examples:
        req = InfillRequest(text=ex.text, spans=[Span(ex.start, ex.end)], steps=1)
        budget = max(lengths_for(model, req, 0)) + 2  # room past the original, to be trimmed
        out = infill_eos_padded(model, req, budget)
        n += 1
        hits += _restored(out.fill, ex.target, word)
        same += out.length == _own_count(model, ex)
        with_eos += out.eos > 0
        inner += out.inner
        empty += out.length == 0
    return {"n": n, "exact": hits / max(1, n), "length_equals_original": same / max(1, n),
            "fills_with_eos": with_eos / max(1, n), "text_after_first_eos": inner / max(1, n),
            "empty_fills": empty / max(1, n)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--spans", type=int, default=200)
    ap.add_argument("--eos", type=int, default=0, help="single words to try EOS padding on")
    ap.add_argument("--samples", type=int, default=None, help="Monte Carlo masks per fill (ELBO)")
    ap.add_argument("--window", type=int, default=None,
                    help="context tokens the score sees (0: the run's whole view)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--heldout", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import torch

    from lacuna import engine
    from lacuna.engine.length import DEFAULT_SAMPLES, DEFAULT_WINDOW
    from lacuna.engine.bench.restore import load_texts, span_examples, word_examples

    samples = DEFAULT_SAMPLES if args.samples is None else args.samples
    window = DEFAULT_WINDOW if args.window is None else (args.window or None)

    if args.threads:
        torch.set_num_threads(args.threads)
    model = engine.load_model(args.model, dtype=args.dtype)
    texts = load_texts(args.heldout)
    report: dict = {"model": args.model, "dtype": args.dtype, "threads": torch.get_num_threads(),
                    "samples": samples, "window": window, "load_average_start": os.getloadavg()}
    if args.words:
        report["single_word"] = measure(model, word_examples(texts, args.words, seed=0), True, samples, window)
        _print("single word", report["single_word"])
    if args.spans:
        report["spans_2_8"] = measure(model, span_examples(texts, args.spans, seed=1), False, samples, window)
        _print("2-8 words", report["spans_2_8"])
    if args.eos:
        report["eos_single_word"] = measure_eos(model, word_examples(texts, args.eos, seed=0), True)
        print("EOS padding, single words:", json.dumps(report["eos_single_word"]))
    report["load_average_end"] = os.getloadavg()
    print("load average (1, 5, 15 min): start", report["load_average_start"], "end", report["load_average_end"])
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return 0


def _print(task: str, r: dict) -> None:
    print(f"\n{task}: n={r['n']}, fixed-length exact {r['fixed_exact']:.1%}; "
          f"original length among those tried {r['original_length_tried']:.1%}; "
          f"some tried length restores {r['any_tried_length_restores']:.1%}")
    print(f"baselines for 'length = original': always the shortest {r['shortest_tried_is_original']:.1%}, "
          f"a random pick {r['random_pick_is_original']:.1%}")
    print(f"{'ranking':<16} {'auto exact':>10} {'length = original':>18}  chosen - original: count")
    for key, value in r["auto_exact"].items():
        print(f"{key:<16} {value:>10.1%} {r['chosen_equals_original'][key]:>18.1%}  {r['chosen_minus_original'][key]}")
    print(f"runs per example {r['runs_per_example']:.2f}; forward passes auto {r['nfe_auto']} "
          f"(of which scoring {r['nfe_auto_scoring']}) vs fixed {r['nfe_fixed']}; seconds auto "
          f"{r['seconds_auto']} (of which scoring {r['seconds_auto_scoring']}) vs fixed {r['seconds_fixed']}: "
          f"ratio {r['time_ratio']} with the ELBO, {r['time_ratio_path']} with the path score")


if __name__ == "__main__":
    sys.exit(main())
