"""Compare training objectives: short runs, one per masking mixture, scored on
held-out single-word restore with the bare network.

    python -m training.pilot --work WORK --corpus CORPUS --mixtures absorb,mixed --minutes 6

Each mixture of :data:`.masking.MIXTURES` trains in its own process (same
shape, data order and seed; only the masks differ) for the same time budget
under ``WORK/pilot-<mixture>``; then each checkpoint fills the same held-out
words (:func:`.evaluate.network_word_restore`). Prints one JSON line per
mixture: steps, held-out loss, restore rate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def score(run_dir: Path, tokenizer_dir: Path, heldout: Path, examples: int, context: int, seed: int) -> dict:
    """Single-word restore rate of the checkpoint in ``run_dir`` on ``examples`` held-out words."""
    from lacuna.engine.models.llada import LLaDAConfig, LLaDANetwork

    from lacuna.engine.bench import restore as evaluate
    from . import tokenizer as tk
    from .train import load_checkpoint

    st = load_checkpoint(run_dir / "ckpt.pt")
    meta = json.loads(st["meta"])
    config = LLaDAConfig.from_config(meta["config"])
    net = LLaDANetwork(config)
    net.load_state_dict(st["model"])
    tok = tk.load(tokenizer_dir)
    words = evaluate.word_examples(evaluate.load_texts(heldout), examples, seed)
    got = evaluate.network_word_restore(net, tok, words, context, config.mask_token_id)
    return {"mixture": meta["mixture"], "step": st["step"], "train_s": round(float(st["seconds"])),
            "heldout_loss": meta.get("final_heldout_loss"), "word_restore": got["restore"],
            "word_nll": round(got["word_nll"], 3), "n": len(words)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="folder with tokenizer/, train_ids.npy, heldout_ids.npy")
    ap.add_argument("--corpus", type=Path, required=True, help="folder with heldout.jsonl")
    ap.add_argument("--mixtures", default="absorb,mixed")
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--shape", default="p4")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--examples", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score-only", action="store_true", help="score existing pilot runs")
    args = ap.parse_args(argv)
    mixtures = args.mixtures.split(",")
    if not args.score_only:
        procs = []
        for m in mixtures:
            cmd = [sys.executable, "-m", "training.train", "--run-dir", str(args.work / f"pilot-{m}"),
                   "--tokenizer", str(args.work / "tokenizer"), "--train-ids", str(args.work / "train_ids.npy"),
                   "--heldout-ids", str(args.work / "heldout_ids.npy"), "--shape", args.shape,
                   "--context", str(args.context), "--batch", str(args.batch), "--lr", str(args.lr),
                   "--warmup", "50", "--minutes", str(args.minutes), "--mixture", m, "--seed", str(args.seed),
                   "--threads", "1", "--eval-every", "0"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
        if any(p.wait() for p in procs):
            raise SystemExit("a pilot run failed")
    for m in mixtures:
        print(json.dumps(score(args.work / f"pilot-{m}", args.work / "tokenizer", args.corpus / "heldout.jsonl",
                               args.examples, args.context, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
