"""Train the starter masked-diffusion model on packed token windows.

Data: the training split is tokenized once (no special tokens), documents are
joined with ``[SEP]`` into one stream, and each batch row is a random window of
``context`` tokens from that stream (sequence packing, no padding). The batch
for step ``s`` is drawn from ``numpy.random.default_rng([seed, s])``, so a run
is deterministic for a seed and resumes exactly from a checkpoint.

Objective: absorbing-state masked diffusion (see :mod:`.masking`): masked
positions are replaced by ``[MASK]``; cross-entropy on masked positions only
(the prediction head runs on masked positions only), weighted 1/k per
sequence.

Optimiser: AdamW (betas 0.9/0.98, weight decay 0.01 on matrices), linear
warmup then cosine decay to 10% over ``--steps``. ``--minutes`` (or
``--deadline``) stops the run at a wall-clock time, after saving a
checkpoint; ``--steps`` is what fixes the schedule (the starter command
derives it from a short speed measurement and records it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import masking
from .model import SHAPES, Shape, count_params, make_model
from .tokenizer import MASK, SEP, SPECIAL_TOKENS


MASKED_BUCKET = 256
SHORT_LENGTHS = (32, 64, 128)  # window lengths of the short steps (few shapes: see Trainer.loss)


def encode_stream(tok, texts: list[str]) -> np.ndarray:
    """Token ids of all texts joined with [SEP], as uint16/uint32."""
    sep = tok.token_to_id(SEP)
    out: list[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        out.extend(enc.ids)
        out.append(sep)
    dtype = np.uint16 if tok.get_vocab_size() < 65536 else np.uint32
    return np.asarray(out, dtype=dtype)


def start_table(tok) -> np.ndarray:
    vocab = tok.get_vocab_size()
    tokens = [tok.id_to_token(i) or "" for i in range(vocab)]
    specials = {tok.token_to_id(t) for t in SPECIAL_TOKENS}
    return masking.word_start_table(tokens, specials)


class Trainer:
    def __init__(self, model, stream: np.ndarray, is_start: np.ndarray, *, mask_id: int,
                 context: int, batch: int, lr: float, steps: int, warmup: int, seed: int,
                 low_frac: float = 0.5, low_max: float = 0.15, span_frac: float = 0.5,
                 bf16: bool = True, short_frac: float = 0.0):
        self.model = model
        self.short_frac = short_frac
        self.stream = stream
        self.is_start = is_start
        self.mask_id = mask_id
        self.context = context
        self.batch = batch
        self.lr = lr
        self.steps = steps
        self.warmup = warmup
        self.seed = seed
        self.low_frac, self.low_max, self.span_frac = low_frac, low_max, span_frac
        self.bf16 = bf16
        decay, no_decay = [], []
        seen = set()
        for _, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if p.ndim >= 2 else no_decay).append(p)
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.98), eps=1e-8)
        self.step = 0

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        p = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    def make_batch(self, step: int, stream: np.ndarray | None = None, batch: int | None = None):
        stream = self.stream if stream is None else stream
        b = batch or self.batch
        rng = np.random.default_rng([self.seed, step])
        length = self.context
        if self.short_frac > 0 and rng.random() < self.short_frac:
            # a short window now and then: the editor often sends short texts
            length = int(rng.choice([n for n in SHORT_LENGTHS if n < self.context] or [self.context]))
        hi = len(stream) - length
        offs = rng.integers(0, max(1, hi), size=b)
        ids = stream[offs[:, None] + np.arange(length)[None, :]].astype(np.int64)
        masks, _ = masking.make_masks(rng, ids, self.is_start, self.low_frac, self.low_max, self.span_frac)
        weights = masking.loss_weights(masks)
        return (torch.from_numpy(ids), torch.from_numpy(masks),
                torch.from_numpy(weights.astype(np.float32)))

    def loss(self, ids: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        inp = ids.masked_fill(masks, self.mask_id)
        # The head runs on the masked positions only, padded (weight 0) to a
        # multiple of MASKED_BUCKET rows: on CPU every new matmul shape costs
        # cached kernel memory, and an unbucketed count grows it without bound.
        flat = masks.reshape(-1).nonzero().squeeze(1)
        pad = (-flat.numel()) % MASKED_BUCKET
        idx = torch.cat([flat, flat.new_zeros(pad)])
        w = torch.cat([weights.reshape(-1)[flat], weights.new_zeros(pad)])
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            hidden = self.model.model(input_ids=inp).last_hidden_state
            sel = hidden.reshape(-1, hidden.shape[-1])[idx]
            logits = self.model.decoder(self.model.head(sel))
        ce = torch.nn.functional.cross_entropy(logits.float(), ids.reshape(-1)[idx], reduction="none")
        return (ce * w).sum() / ids.shape[0]

    def train_step(self) -> float:
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        ids, masks, weights = self.make_batch(self.step)
        loss = self.loss(ids, masks, weights)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def eval_loss(self, stream: np.ndarray, n_batches: int = 4) -> float:
        """Masked loss on held-out windows with fixed masks (seeded, step-independent)."""
        self.model.eval()
        tot = 0.0
        for i in range(n_batches):
            ids, masks, weights = self.make_batch(10_000_000 + i, stream=stream)
            tot += float(self.loss(ids, masks, weights))
        return tot / n_batches

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step}

    def load_state(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.step = st["step"]


def save_checkpoint(trainer: Trainer, path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({**trainer.state(), "meta": meta}, tmp)
    os.replace(tmp, path)


def run(args) -> dict:
    from tokenizers import Tokenizer

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json")
                              if Path(args.tokenizer).is_dir() else args.tokenizer)
    shape = SHAPES[args.shape] if args.shape in SHAPES else Shape(**json.loads(args.shape))
    shape = Shape(**{**asdict(shape), "vocab": tok.get_vocab_size(), "context": args.context})
    stream = np.load(args.train_ids)
    held = np.load(args.heldout_ids)
    model = make_model(shape, seed=args.seed)
    trainer = Trainer(model, stream, start_table(tok), mask_id=tok.token_to_id(MASK),
                      context=shape.context, batch=args.batch, lr=args.lr, steps=args.steps,
                      warmup=args.warmup, seed=args.seed, low_frac=args.low_frac,
                      low_max=args.low_max, span_frac=args.span_frac, bf16=not args.fp32,
                      short_frac=args.short_frac)
    ckpt = run_dir / "ckpt.pt"
    meta = {"shape": asdict(shape), "args": {k: v for k, v in vars(args).items()},
            "params": count_params(model)}
    if ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=False)
        trainer.load_state(st)
        meta = {**st.get("meta", {}), **meta}
        meta.setdefault("resumed_at", []).append(trainer.step)
    stop = {"signal": None}

    def _on_signal(signum, frame):  # save a checkpoint and stop at the end of the step
        stop["signal"] = signum

    import signal
    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass
    try:
        return _loop(args, trainer, shape, held, ckpt, meta, run_dir, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _loop(args, trainer, shape, held, ckpt, meta, run_dir, stop) -> dict:
    if meta.get("schedule_steps") and meta["schedule_steps"][-1][1] != args.steps:
        meta["schedule_steps"].append([trainer.step, args.steps])
    meta.setdefault("schedule_steps", [[trainer.step, args.steps]])
    deadline = args.deadline
    if args.minutes is not None:
        deadline = min(deadline or float("inf"), time.time() + 60 * args.minutes)
    log = open(run_dir / "train.log", "a")
    t0 = time.time()
    t_last_ckpt = t0
    step0 = trainer.step
    prior_seconds = meta.get("train_seconds", 0.0)
    ema = None
    reason = "steps"
    while trainer.step < args.steps:
        if deadline is not None and time.time() >= deadline:
            reason = "deadline"
            break
        if stop["signal"] is not None:
            reason = f"signal {stop['signal']}"
            break
        loss = trainer.train_step()
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        s = trainer.step
        if s % args.log_every == 0 or s == 1:
            el = time.time() - t0
            tps = (s - step0) * args.batch * shape.context / max(el, 1e-9)
            rec = {"step": s, "loss": round(loss, 4), "ema": round(ema, 4), "lr": trainer.lr_at(s - 1),
                   "tok_s": round(tps), "elapsed_s": round(prior_seconds + el, 1)}
            if s % args.eval_every == 0:
                rec["heldout_loss"] = round(trainer.eval_loss(held), 4)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if time.time() - t_last_ckpt > args.ckpt_minutes * 60:
            meta["train_seconds"] = prior_seconds + time.time() - t0
            meta["last_ema"] = ema
            save_checkpoint(trainer, ckpt, meta)
            t_last_ckpt = time.time()
    meta["train_seconds"] = prior_seconds + time.time() - t0
    meta["last_ema"] = ema
    meta["stop_reason"] = reason
    meta["final_step"] = trainer.step
    meta["final_heldout_loss"] = trainer.eval_loss(held)
    save_checkpoint(trainer, ckpt, meta)
    log.write(json.dumps({"done": reason, "step": trainer.step, "heldout_loss": meta["final_heldout_loss"],
                          "train_seconds": round(meta["train_seconds"], 1)}) + "\n")
    log.close()
    return meta


def bench(args) -> None:
    """Tokens/s of a few training steps for each shape in --bench."""
    torch.set_num_threads(args.threads)
    stream = np.load(args.train_ids)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json"))
    table = start_table(tok)
    for name in args.bench.split(","):
        shape = Shape(**{**asdict(SHAPES[name]), "vocab": tok.get_vocab_size(), "context": args.context})
        model = make_model(shape, seed=0)
        if args.compile:
            model.model = torch.compile(model.model)
        tr = Trainer(model, stream, table, mask_id=tok.token_to_id(MASK), context=shape.context,
                     batch=args.batch, lr=1e-3, steps=1000, warmup=10, seed=0, bf16=not args.fp32)
        for _ in range(2):
            tr.train_step()
        t = time.time()
        n = args.bench_steps
        for _ in range(n):
            tr.train_step()
        dt = time.time() - t
        print(json.dumps({"shape": name, "params": count_params(model), "batch": args.batch,
                          "context": shape.context, "tok_s": round(n * args.batch * shape.context / dt),
                          "step_s": round(dt / n, 3)}), flush=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train the starter masked-diffusion model.")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    ap.add_argument("--train-ids", required=True, help=".npy token stream (training split)")
    ap.add_argument("--heldout-ids", required=True, help=".npy token stream (held-out split)")
    ap.add_argument("--shape", default="s8", help=f"one of {sorted(SHAPES)} or a JSON Shape")
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--deadline", type=float, default=None, help="unix time to stop at")
    ap.add_argument("--low-frac", type=float, default=0.5)
    ap.add_argument("--low-max", type=float, default=0.15)
    ap.add_argument("--span-frac", type=float, default=0.5)
    ap.add_argument("--short-frac", type=float, default=0.1,
                    help="fraction of steps that use a shorter window (32, 64 or 128 tokens)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--bench", default=None, help="comma-separated shapes: measure tokens/s and exit")
    ap.add_argument("--bench-steps", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bench:
        bench(args)
        return 0
    print(json.dumps(run(args), indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
