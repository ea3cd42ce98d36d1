"""Export a training checkpoint as a transformers model folder.

The folder holds config.json (model_type modernbert), model.safetensors (bf16
by default), tokenizer.json, tokenizer_config.json, special_tokens_map.json
and training_meta.json (shape, step, loss, seconds), and loads with
``AutoModelForMaskedLM`` / ``AutoTokenizer`` or ``engine.load_model``.

``python -m engine.training.export --ckpt RUN/ckpt.pt --tokenizer TOKDIR --out DIR``
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from .model import Shape, make_config


def export(ckpt_path: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
           dtype: torch.dtype = torch.bfloat16) -> dict:
    from transformers import ModernBertForMaskedLM

    from . import tokenizer as tk

    st = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    meta = st.get("meta", {})
    shape = Shape(**meta["shape"])
    cfg = make_config(shape)
    model = ModernBertForMaskedLM(cfg)
    model.load_state_dict(st["model"])
    model = model.to(dtype).eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tk.save(tk.load(tokenizer_dir), out, model_max_length=shape.context)
    for f in out.iterdir():
        f.chmod(0o644)
    info = {
        "shape": meta["shape"],
        "params": meta.get("params"),
        "step": st.get("step"),
        "train_seconds": round(float(meta.get("train_seconds", 0.0)), 1),
        "train_loss_ema": meta.get("last_ema"),
        "heldout_loss": meta.get("final_heldout_loss"),
        "stop_reason": meta.get("stop_reason"),
        "args": meta.get("args"),
        "dtype": str(dtype).replace("torch.", ""),
    }
    (out / "training_meta.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return info


def copy_model(src: str | Path, dst: str | Path) -> None:
    """Copy the files of an exported model folder (not the card) into ``dst``."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "training_meta.json"):
        p = Path(src) / name
        if p.exists():
            shutil.copy2(p, dst / name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export a checkpoint as a model folder.")
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
