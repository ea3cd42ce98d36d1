"""Export a training checkpoint in the official LLaDA layout.

The folder holds ``config.json`` (model_type "llada", the official key set,
from :meth:`LLaDAConfig.to_config`), ``model.safetensors`` (bf16 by default,
the official tensor names such as ``model.transformer.blocks.0.q_proj.weight``),
``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json`` and
``training_meta.json`` (shape, step, seconds, tokens seen, losses); it loads
with ``engine.load_model(folder)`` through the LLaDA family.

``python -m training.export --ckpt RUN/ckpt.pt --tokenizer TOKDIR --out DIR``
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "training_meta.json")


def export(ckpt_path: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
           dtype: torch.dtype = torch.bfloat16) -> dict:
    """Write the model folder; returns the training metadata written to training_meta.json."""
    from safetensors.torch import save_file

    from lacuna.engine.models.llada import LLaDAConfig

    from . import tokenizer as tk
    from .train import load_checkpoint

    st = load_checkpoint(Path(ckpt_path))
    meta = json.loads(st["meta"])
    config = LLaDAConfig.from_config(meta["config"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(dtype).contiguous() for k, v in st["model"].items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config.to_config(), indent=2) + "\n")
    tk.save(tk.load(tokenizer_dir), out, model_max_length=config.max_sequence_length)
    info = {
        "shape": meta.get("shape"),
        "config": config.to_config(),
        "mixture": meta.get("mixture"),
        "params": meta.get("params"),
        "step": st.get("step"),
        "train_seconds": round(float(st.get("seconds", 0.0)), 1),
        "tokens_seen": meta.get("tokens_seen"),
        "train_loss_ema": meta.get("last_ema"),
        "heldout_loss": meta.get("final_heldout_loss"),
        "stop_reason": meta.get("stop_reason"),
        "args": meta.get("args"),
        "dtype": str(dtype).replace("torch.", ""),
    }
    (out / "training_meta.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    for f in out.iterdir():
        f.chmod(0o644)
    return info


def copy_model(src: str | Path, dst: str | Path) -> None:
    """Copy the files of an exported model folder (not the card) into ``dst``."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        p = Path(src) / name
        if p.exists():
            shutil.copy2(p, dst / name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export a checkpoint as an official-layout LLaDA folder.")
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = ap.parse_args(argv)
    info = export(args.ckpt, args.tokenizer, args.out, getattr(torch, args.dtype))
    print(json.dumps(info, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
