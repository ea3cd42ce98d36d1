"""Train the starter: an LLaDA network on packed token windows, in plain torch.

Data: the training split is tokenized once (no special tokens added),
documents are joined with ``<|endoftext|>`` into one stream, and each batch
row is a random window of ``context`` tokens from that stream (sequence
packing, no padding). The batch for step ``s`` comes from
``numpy.random.default_rng([seed, s])``, so a run resumes exactly where its
checkpoint left it.

Objective: :mod:`.masking` (LLaDA's absorbing objective mixed with whole-word
span masking); the output layer runs on the masked positions only.

Schedule over a time budget (``--minutes``): linear warmup for ``--warmup``
steps, then cosine decay to 10% of ``--lr`` as a function of the fraction of
the budget spent, so a run of N minutes ends at the bottom of its schedule
whatever the machine's speed. ``--steps`` optionally caps the step count (the
schedule then follows whichever of the two runs out first). A checkpoint
(model, optimiser, step, seconds spent) is written every ``--ckpt-minutes``
and at the end; restarting with the same ``--run-dir`` resumes from it.
SIGTERM/SIGINT stop after the current step with a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from . import masking
from .network import SHAPES, count_params, make_config, make_network
from .tokenizer import EOS, MASK_ID, SPECIAL_TOKENS

MASKED_BUCKET = 256  # the head's row count is padded to a multiple of this
SHORT_LENGTHS = (32, 64, 128)  # window lengths of the short steps


def encode_stream(tok, texts: list[str]) -> np.ndarray:
    """Token ids of all texts, each followed by ``<|endoftext|>``, as uint16/uint32 [N]."""
    eos = tok.token_to_id(EOS)
    out: list[int] = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        out.extend(enc.ids)
        out.append(eos)
    dtype = np.uint16 if tok.get_vocab_size() < 65536 else np.uint32
    return np.asarray(out, dtype=dtype)


def start_table(tok) -> np.ndarray:
    """Word-start flag per vocabulary id (see :func:`.masking.word_start_table`)."""
    tokens = [tok.id_to_token(i) or "" for i in range(tok.get_vocab_size())]
    return masking.word_start_table(tokens, {tok.token_to_id(t) for t in SPECIAL_TOKENS})


class Trainer:
    """One LLaDA network, its AdamW optimiser and the data/mask stream.

    ``budget_s``: the time budget the learning-rate schedule spans (None:
    the schedule spans ``steps``)."""

    def __init__(self, model, stream: np.ndarray, is_start: np.ndarray, *, context: int, batch: int,
                 lr: float, warmup: int, seed: int, mixture: masking.Mixture,
                 budget_s: float | None = None, steps: int | None = None, short_frac: float = 0.0,
                 mask_id: int = MASK_ID, window: int | None = None, long_frac: float = 0.0,
                 weight_decay: float = 0.1):
        if budget_s is None and steps is None:
            raise ValueError("give a time budget or a step count")
        self.model = model
        self.stream = stream
        self.is_start = is_start
        self.context = context
        self.batch = batch
        self.lr = lr
        self.warmup = warmup
        self.seed = seed
        self.mixture = mixture
        self.budget_s = budget_s
        self.steps = steps
        self.short_frac = short_frac
        self.mask_id = mask_id
        self.window = min(window or context, context)
        self.long_frac = long_frac
        decay = [p for p in model.parameters() if p.ndim >= 2]
        no_decay = [p for p in model.parameters() if p.ndim < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.98), eps=1e-8)
        self.step = 0
        self.seconds = 0.0  # training seconds spent, across resumes

    def progress(self) -> float:
        """Fraction of the run spent (time budget or steps, whichever is further along)."""
        p = 0.0
        if self.budget_s:
            p = max(p, self.seconds / self.budget_s)
        if self.steps:
            p = max(p, self.step / self.steps)
        return min(1.0, p)

    def lr_now(self) -> float:
        if self.step < self.warmup:
            return self.lr * (self.step + 1) / self.warmup
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * self.progress())))

    def make_batch(self, step: int, stream: np.ndarray | None = None, batch: int | None = None):
        """(ids [B, L] long, masks [B, L] bool, weights [B, L] float) for ``step``."""
        stream = self.stream if stream is None else stream
        b = batch or self.batch
        rng = np.random.default_rng([self.seed, step])
        length = self.window
        if self.long_frac > 0 and self.window < self.context and rng.random() < self.long_frac:
            # now and then the full context, with as many tokens per step
            # (fewer rows), so the model sees every distance it will be given
            b = max(1, b * self.window // self.context)
            length = self.context
        elif self.short_frac > 0 and rng.random() < self.short_frac:
            # now and then a short window: the editor often sends short texts
            length = int(rng.choice([n for n in SHORT_LENGTHS if n < self.window] or [self.window]))
        offs = rng.integers(0, max(1, len(stream) - length), size=b)
        ids = stream[offs[:, None] + np.arange(length)[None, :]].astype(np.int64)
        masks, weights, _ = masking.make_masks(rng, ids, self.is_start, self.mixture)
        return torch.from_numpy(ids), torch.from_numpy(masks), torch.from_numpy(weights)

    def loss(self, ids: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor,
             divide_by: int | None = None) -> torch.Tensor:
        """sum over masked positions of weight * cross-entropy, divided by B
        (or by ``divide_by``: the full batch when this is one worker's share)."""
        hidden = self.model.hidden(ids.masked_fill(masks, self.mask_id))
        # The head runs on the masked rows only, padded (weight 0) to a multiple
        # of MASKED_BUCKET rows: on CPU every new matmul shape keeps cached
        # kernel memory, and an unbucketed row count grows it without bound.
        flat = masks.reshape(-1).nonzero().squeeze(1)
        idx = torch.cat([flat, flat.new_zeros((-flat.numel()) % MASKED_BUCKET)])
        w = torch.cat([weights.reshape(-1)[flat], weights.new_zeros(idx.numel() - flat.numel())])
        logits = self.model.head(hidden.reshape(-1, hidden.shape[-1])[idx])
        ce = torch.nn.functional.cross_entropy(logits.float(), ids.reshape(-1)[idx], reduction="none")
        return (ce * w).sum() / (divide_by or ids.shape[0])

    def train_step(self) -> float:
        """One optimiser step on the batch of ``self.step``. With several
        worker processes (``torch.distributed`` initialised), each computes the
        loss of its share of the batch rows and the gradients are summed, so the
        update equals the single-process one up to float rounding."""
        t = time.time()
        self.model.train()
        for g in self.opt.param_groups:
            g["lr"] = self.lr_now()
        ids, masks, weights = self.make_batch(self.step)
        world, rank = _world()
        loss = self.loss(ids[rank::world], masks[rank::world], weights[rank::world], divide_by=ids.shape[0])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            _sum_gradients(self.model)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step += 1
        self.seconds += time.time() - t
        value = loss.detach().reshape(1).double()
        if world > 1:  # the whole batch's loss; every worker follows rank 0's clock, so all stop together
            torch.distributed.all_reduce(value)
            clock = torch.tensor([self.seconds], dtype=torch.float64)
            torch.distributed.broadcast(clock, 0)
            self.seconds = float(clock)
        return float(value)

    def done(self) -> bool:
        return self.progress() >= 1.0

    @torch.no_grad()
    def eval_loss(self, stream: np.ndarray, n_batches: int = 4) -> float:
        """Loss on held-out windows with fixed masks (seeded, step-independent)."""
        self.model.eval()
        tot = sum(float(self.loss(*self.make_batch(10_000_000 + i, stream=stream))) for i in range(n_batches))
        return tot / n_batches

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                "seconds": self.seconds}

    def load_state(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.step = int(st["step"])
        self.seconds = float(st["seconds"])


def _world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _sum_gradients(model) -> None:
    """All-reduce (sum) every gradient across the workers, as one flat buffer."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    offset = 0
    for p, g in zip(model.parameters(), grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def start_workers(argv: list[str], workers: int) -> tuple[list, int]:
    """Start ``workers - 1`` more training processes on this machine (ranks 1..),
    each in its own session, joined over gloo on 127.0.0.1; this process
    becomes rank 0. Returns (the child processes, the port)."""
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(workers)}
    children = [subprocess.Popen([sys.executable, "-m", "training.train", *argv],
                                 env={**env, "RANK": str(r)}, start_new_session=True,
                                 stdout=subprocess.DEVNULL)
                for r in range(1, workers)]
    os.environ.update({**{k: env[k] for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE")}, "RANK": "0"})
    return children, port


def save_checkpoint(trainer: Trainer, path: Path, meta: str) -> None:
    """Write tensors and plain data (``meta``: a JSON string) so that
    :func:`load_checkpoint` can read it with ``weights_only=True``."""
    tmp = path.with_suffix(".tmp")
    torch.save({**trainer.state(), "meta": meta}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def run(args) -> dict:
    """Train (or resume) into ``args.run_dir``; returns the run's metadata."""
    from tokenizers import Tokenizer

    torch.set_num_threads(args.threads)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("gloo")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tok_path = Path(args.tokenizer)
    tok = Tokenizer.from_file(str(tok_path / "tokenizer.json" if tok_path.is_dir() else tok_path))
    shape = args.shape if args.shape in SHAPES else json.loads(args.shape)
    config = make_config(shape, tok.get_vocab_size(), args.context)
    stream = np.load(args.train_ids)
    held = np.load(args.heldout_ids)
    model = make_network(config, seed=args.seed)
    mixture = masking.MIXTURES[args.mixture]
    trainer = Trainer(model, stream, start_table(tok), context=args.context, batch=args.batch, lr=args.lr,
                      warmup=args.warmup, seed=args.seed, mixture=mixture,
                      budget_s=None if args.minutes is None else 60 * args.minutes,
                      steps=args.steps, short_frac=args.short_frac, window=args.window,
                      long_frac=args.long_frac, weight_decay=args.weight_decay)
    ckpt = run_dir / "ckpt.pt"
    meta = {"config": config.to_config(), "shape": shape, "mixture": args.mixture,
            "args": {k: v for k, v in vars(args).items()}, "params": count_params(model)}
    if ckpt.exists():
        st = load_checkpoint(ckpt)
        trainer.load_state(st)
        meta = {**json.loads(st["meta"]), **meta}
        meta.setdefault("resumed_at", []).append(trainer.step)
    stop = {"signal": None}

    def _on_signal(signum, frame):  # checkpoint and stop at the end of the step
        stop["signal"] = signum

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass
    try:
        return _loop(args, trainer, held, ckpt, meta, run_dir, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _save(trainer: Trainer, ckpt: Path, meta: dict) -> None:
    meta["train_seconds"] = trainer.seconds
    meta["step"] = trainer.step
    meta["tokens_seen"] = trainer.step * trainer.batch * trainer.window  # approximate: short windows are fewer
    save_checkpoint(trainer, ckpt, json.dumps(meta, default=str))


def _loop(args, trainer: Trainer, held, ckpt: Path, meta: dict, run_dir: Path, stop) -> dict:
    world, rank = _world()
    lead = rank == 0  # only rank 0 logs, evaluates and writes checkpoints
    log = open(run_dir / "train.log", "a") if lead else None
    t_last_ckpt = time.time()
    step0, sec0 = trainer.step, trainer.seconds
    ema = meta.get("last_ema")
    reason = "budget"
    meta["workers"] = world
    while not trainer.done():
        if world > 1:  # rank 0's stop request reaches every worker
            flag = torch.tensor([0 if stop["signal"] is None else int(stop["signal"])])
            torch.distributed.broadcast(flag, 0)
            stop["signal"] = int(flag) or None
        if stop["signal"] is not None:
            reason = f"signal {stop['signal']}"
            break
        loss = trainer.train_step()
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        s = trainer.step
        if lead and (s % args.log_every == 0 or s == 1):
            rec = {"step": s, "loss": round(loss, 4), "ema": round(ema, 4), "lr": round(trainer.lr_now(), 6),
                   "progress": round(trainer.progress(), 4),
                   "tok_s": round((s - step0) * trainer.batch * trainer.window / max(trainer.seconds - sec0, 1e-9)),
                   "train_s": round(trainer.seconds, 1)}
            if args.eval_every and s % args.eval_every == 0:
                rec["heldout_loss"] = round(trainer.eval_loss(held), 4)
            log.write(json.dumps(rec) + "\n")
            log.flush()
        if lead and time.time() - t_last_ckpt > args.ckpt_minutes * 60:
            meta["last_ema"] = ema
            _save(trainer, ckpt, meta)
            t_last_ckpt = time.time()
    meta["last_ema"] = ema
    meta["stop_reason"] = reason
    if lead:
        meta["final_heldout_loss"] = trainer.eval_loss(held)
        _save(trainer, ckpt, meta)
        log.write(json.dumps({"done": reason, "step": trainer.step, "heldout_loss": meta["final_heldout_loss"],
                              "train_s": round(trainer.seconds, 1)}) + "\n")
        log.close()
    return meta


def bench(args) -> None:
    """Training tokens/s of a few steps for each shape in ``--bench``."""
    from tokenizers import Tokenizer

    torch.set_num_threads(args.threads)
    stream = np.load(args.train_ids)
    tok = Tokenizer.from_file(str(Path(args.tokenizer) / "tokenizer.json"))
    table = start_table(tok)
    for name in args.bench.split(","):
        model = make_network(make_config(name, tok.get_vocab_size(), args.context))
        tr = Trainer(model, stream, table, context=args.context, batch=args.batch, lr=1e-3, warmup=10,
                     seed=0, mixture=masking.MIXTURES[args.mixture], steps=1000)
        tr.train_step()
        t = time.time()
        for _ in range(args.bench_steps):
            tr.train_step()
        dt = time.time() - t
        print(json.dumps({"shape": name, "params": count_params(model), "batch": args.batch,
                          "context": args.context, "step_s": round(dt / args.bench_steps, 3),
                          "tok_s": round(args.bench_steps * args.batch * args.context / dt)}), flush=True)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train the starter LLaDA network.")
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    ap.add_argument("--train-ids", required=True, help=".npy token stream (training split)")
    ap.add_argument("--heldout-ids", required=True, help=".npy token stream (held-out split)")
    ap.add_argument("--shape", default="s8", help=f"one of {sorted(SHAPES)} or a JSON dict of LLaDA dims")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=None, help="time budget the schedule spans")
    ap.add_argument("--steps", type=int, default=None, help="step cap (also spans the schedule)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mixture", default="mixed", choices=sorted(masking.MIXTURES))
    ap.add_argument("--short-frac", type=float, default=0.1,
                    help="fraction of steps on a short window (32, 64 or 128 tokens)")
    ap.add_argument("--window", type=int, default=None,
                    help="window length of most steps (default: --context); cheaper steps, more of them")
    ap.add_argument("--long-frac", type=float, default=0.0,
                    help="with --window: fraction of steps on full-context windows (fewer rows, same tokens)")
    ap.add_argument("--weight-decay", type=float, default=0.1,
                    help="AdamW decay of the matrices (it also bounds the growth of q and k)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1,
                    help="training processes on this machine (data parallel over gloo, each in its own session)")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--bench", default=None, help="comma-separated shapes: measure tokens/s and exit")
    ap.add_argument("--bench-steps", type=int, default=3)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bench:
        bench(args)
        return 0
    if args.minutes is None and args.steps is None:
        raise SystemExit("give --minutes or --steps")
    children = []
    if args.workers > 1 and "RANK" not in os.environ:
        children, _ = start_workers(sys.argv[1:] if argv is None else argv, args.workers)
    meta = run(args)
    if any(c.wait() for c in children):
        raise SystemExit("a training worker failed")
    if _world()[1] == 0:
        print(json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
