#!/usr/bin/env python3
"""Runs `reason bench --json` and `bench/torch_reference.py --json` on the same rows and prints
one table with the ratio candle ÷ PyTorch per row.

Each model is measured by both before the next one starts, so slow drifts of a shared machine
hit both sides alike; the two never run at the same time. With `--plain`, a third column
measures candle's own kernels and autograd (`reason bench --plain-kernels`): the "before".

    python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt
    cargo build --release
    python3 bench/compare.py --models tf_efficientnet_lite0@224,resnet50@224,resnet18@64 \\
        --kinds forward,input_grad,extract
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# The machine each side reported (every row of both carries it).
CPU = {}


def rows(command, side):
    print("$", " ".join(command), file=sys.stderr, flush=True)
    out = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    table = {}
    for line in out.splitlines():
        row = json.loads(line)
        CPU[side] = row.get("cpu")
        if row["kind"] == "decode":
            continue
        table[(row["model"], row["size"], row["batch"], row["kind"])] = row["images_per_s"]
    return table


def caption():
    reason, torch = CPU.get("reason") or {}, CPU.get("torch") or {}
    line = (
        f"CPU: {reason.get('model', '?')}, {reason.get('logical_cpus', '?')} logical CPUs; "
        f"REASON: {reason.get('threads', '?')} threads, GEMM {reason.get('gemm', '?')}, "
        f"loops {reason.get('loops', '?')}, CPU has {' '.join(reason.get('detected', []))}"
    )
    if torch:
        line += f"; PyTorch: {torch.get('threads', '?')} threads, {torch.get('capability', '?')} kernels"
    return line


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tf_efficientnet_lite0@224,resnet50@224,resnet18@64")
    parser.add_argument("--kinds", default="forward,input_grad,extract")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reason", default=str(ROOT / "target" / "release" / "reason"))
    parser.add_argument("--python", default=str(ROOT / "bench" / ".venv" / "bin" / "python"))
    parser.add_argument("--plain", action="store_true", help="also measure candle's own kernels")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args()

    for tool, hint in [
        (args.reason, "cargo build --release"),
        (args.python, "python3 -m venv bench/.venv && bench/.venv/bin/pip install -r bench/requirements.txt"),
    ]:
        if not Path(tool).exists():
            sys.exit(f"{tool} not found; first run: {hint}")

    common = ["--kinds", args.kinds, "--batches", args.batches, "--repeats", str(args.repeats), "--json"]
    candle, plain, torch = {}, {}, {}
    for model in args.models.split(","):
        candle.update(rows([args.reason, "bench", "--models", model, "--decode-images", "0", *common], "reason"))
        if args.plain:
            plain.update(
                rows([args.reason, "bench", "--plain-kernels", "--models", model, "--decode-images", "0", *common], "plain")
            )
        # Only the rows candle measured (extract runs for the artifacts' backbone alone).
        kinds = [k for k in args.kinds.split(",") if any(key[3] == k for key in candle if key[0] == model.split("@")[0])]
        if kinds:
            reference = [*common]
            reference[1] = ",".join(kinds)
            torch.update(rows([args.python, "bench/torch_reference.py", "--models", model, *reference], "torch"))

    header = ["model", "size", "batch", "kind"]
    header += ["candle plain"] if args.plain else []
    header += ["candle", "PyTorch", "ratio"]
    if not args.json:
        print(caption())
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
    for key in candle:
        ratio = candle[key] / torch[key] if key in torch else None
        if args.json:
            model, size, batch, kind = key
            print(json.dumps(dict(model=model, size=size, batch=batch, kind=kind, candle=candle[key],
                                  candle_plain=plain.get(key), pytorch=torch.get(key), ratio=ratio,
                                  cpu=CPU.get("reason"), pytorch_cpu=CPU.get("torch"))))
            continue
        cells = [str(k) for k in key]
        if args.plain:
            cells.append(f"{plain[key]:.2f}" if key in plain else "-")
        cells.append(f"{candle[key]:.2f}")
        cells.append(f"{torch[key]:.2f}" if key in torch else "-")
        cells.append(f"{ratio:.2f}×" if ratio is not None else "-")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
