"""What bitsandbytes' 8-bit and 4-bit (NF4) weights do on this machine's CPU (issue 21, item 5).

    python benchmarks/bench_quant_cpu.py [--threads 1] [--rounds 5] [--json OUT]
    ATEN_CPU_CAPABILITY=avx2 python benchmarks/bench_quant_cpu.py   # as on a CPU without AVX-512

Loads random LLaDAs (tests/support/tiny_llada.py: the tiny one, and one of d_model 1024 x 4 layers)
and the bundled starter (trained weights) through ``engine.load_model`` on the CPU in float32, bf16,
int8 and nf4; times a fill (a 32-token hole in a 512-token document, 16 steps: the editor's typical
fill) and one forward pass over the document, the precisions interleaved round by round, best of
``--rounds``; compares each precision's logits with float32's (largest difference, top-1 agreement)
and its fill. Prints the CPU flags bitsandbytes' CPU backend picks its kernels by (AVX512-BF16: its
fused NF4 kernel; AVX-512: int8 through torch._int_mm; otherwise int8 as a float32 matmul and NF4
dequantised), the load average and one JSON object. It measures; it passes or fails nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PRECISIONS = ("float32", "bfloat16", "int8", "nf4")
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
        "foolishness, it was the epoch of belief, it was the epoch of incredulity. ")


def _load(folder: str, precision: str, avx2: bool):
    from lacuna.engine import load_model

    if precision in ("int8", "nf4"):
        model = load_model(folder, device="cpu", quantization=precision)
    else:
        model = load_model(folder, device="cpu", dtype=precision)
    if avx2:  # bitsandbytes reads the CPU's flags itself; hold its NF4 layers to the general path too
        for module in model.network.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
    return model


def measure(folder: str, rounds: int, context: int = 512, hole: int = 32, steps: int = 16) -> dict:
    import torch

    from lacuna.engine import InfillRequest, Span, infill

    avx2 = os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2"
    models, loads = {}, {}
    for p in PRECISIONS:
        start = time.perf_counter()
        models[p] = _load(folder, p, avx2)
        loads[p] = time.perf_counter() - start
    tokenizer = models["float32"].tokenizer
    ids = tokenizer(TEXT * 40, add_special_tokens=False)["input_ids"][:context]
    text = tokenizer.decode(ids)
    request = InfillRequest(text, (Span(len(text) // 2, len(text) // 2, length=hole),), steps=steps, seed=0)
    x = torch.tensor([ids])
    fills = {p: [] for p in PRECISIONS}
    forwards = {p: [] for p in PRECISIONS}
    last = {}
    for model in models.values():  # warm-up: first-call allocations; CPU NF4 repacks its weights here
        infill(model, request)
    for _ in range(rounds):
        for p, model in models.items():
            start = time.perf_counter()
            result = infill(model, request)
            fills[p].append(time.perf_counter() - start)
            with torch.no_grad():
                start = time.perf_counter()
                logits = model.network(x).float()
                forwards[p].append(time.perf_counter() - start)
            last[p] = (result.span_text(0), logits)
    ref_text, ref = last["float32"]
    out = {}
    for p in PRECISIONS:
        fill_text, logits = last[p]
        out[p] = {"load_s": round(loads[p], 3), "fill_s": round(min(fills[p]), 3),
                  "forward_s": round(min(forwards[p]), 3),
                  "max_abs_logit_diff": round((logits - ref).abs().max().item(), 4),
                  "top1_agreement": round((logits.argmax(-1) == ref.argmax(-1)).float().mean().item(), 4),
                  "same_fill_as_float32": fill_text == ref_text}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the editor leaves one core to the GUI)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    import torch

    from lacuna.engine import resources
    from tests.support.tiny_llada import build_tiny_llada

    torch.set_num_threads(args.threads)
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        flags = ""
    from lacuna.engine.models.quantize import import_bitsandbytes

    bnb = import_bitsandbytes()  # as the loader imports it: never asking a hub for kernels

    report = {"cpu": {f: f in flags for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")},
              "torch_capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
              "torch": torch.__version__, "bitsandbytes": bnb.__version__,
              "load_average_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {
            "tiny LLaDA (d_model 32 x 2, random)": build_tiny_llada(Path(tmp) / "tiny", context=1024),
            "LLaDA d_model 1024 x 4 (random)": build_tiny_llada(
                Path(tmp) / "wide", context=1024, d_model=1024, n_layers=4, n_heads=16, n_kv_heads=16,
                mlp_hidden_size=4096),
            "starter (trained)": resources.path("models", "starter"),
        }
        for name, folder in folders.items():
            report["models"][name] = measure(str(folder), args.rounds)
            print(name, json.dumps(report["models"][name]), flush=True)
    report["load_average_after"] = os.getloadavg()
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
