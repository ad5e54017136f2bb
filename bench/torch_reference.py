#!/usr/bin/env python3
"""PyTorch reference for `reason bench`: the same rows, measured the same way.

Random weights (throughput does not depend on them), eval mode, the same input shapes, the
same thread count as candle's rayon pool, one warm-up then the best of `--repeats` runs.
Parameters are frozen (`requires_grad_(False)`), so an input gradient computes no weight
gradients, which is what `reason` does too.

Prints the table `reason bench` prints, or with `--json` one object per line:
{"model", "size", "batch", "kind", "images_per_s"}. `bench/compare.py` runs both and prints
the ratio per row.

`--device cuda` (or cuda:N) runs on an NVIDIA GPU, in float32 with TF32 off (candle's CUDA
matmuls and convolutions are full float32), as `reason bench --device cuda` does; images are
decoded on the CPU in both. Every timed call ends with a `.item()`, which waits for the GPU.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps


def threads_like_candle() -> int:
    """rayon's default: RAYON_NUM_THREADS, else the number of CPUs this process may use."""
    env = os.environ.get("RAYON_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0))


def best_time(repeats, fn):
    fn()
    best = float("inf")
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def build(name, device):
    model = timm.create_model(name, pretrained=False, num_classes=1000).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def forward(model, x):
    with torch.inference_mode():
        model(x).float().sum().item()


def input_grad(model, x):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    logits.max(dim=1).values.sum().backward()
    x.grad.sum().item()


# --- end-to-end meta-feature extraction, as `reason bench --kinds extract` -----------------

MC_PASSES = 20


def val_files(data, count):
    """The first `count` images of Imagenette val in REASON's order (class folder, file name)."""
    names = ["imagenette", "imagenette2", "imagenette2-320", "imagenette2-160"]
    vals = [Path(data) / name / "val" for name in names]
    val = next((v for v in vals if v.is_dir()), None)
    if val is None:
        sys.exit(f"no Imagenette val folder under {data}: the extract rows need its images")
    files = sorted(
        str(p.relative_to(val)).encode() for p in val.glob("*/*") if p.is_file()
    )
    return [val / f.decode() for f in files[:count]]


def load_image(path, size):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - 0.5) / 0.5


class Extractor:
    """Decode, forward, gradient of log p(predicted), MC dropout on the head, PCA, k-NN."""

    def __init__(self, model, device, classes=10, pca_dim=32, bank=4000, k=10, dropout=0.2):
        g = torch.Generator().manual_seed(0)
        self.model = model
        self.device = device
        dim = model.num_features
        self.head = torch.nn.Linear(dim, classes).eval().requires_grad_(False).to(device)
        self.mean = torch.randn(dim, generator=g).to(device)
        self.components = (torch.randn(dim, pca_dim, generator=g) / dim**0.5).to(device)
        self.bank = torch.randn(bank, pca_dim, generator=g).to(device)
        self.k = k
        self.dropout = dropout

    def __call__(self, files, size):
        x = torch.stack([load_image(f, size) for f in files]).to(self.device)
        x.requires_grad_(True)
        embedding = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        logits = self.head(embedding)
        predicted = logits.argmax(dim=1)
        F.log_softmax(logits, dim=1).gather(1, predicted[:, None]).sum().backward()
        grad_norm = x.grad.flatten(1).norm(dim=1)
        with torch.no_grad():
            e = embedding.detach()
            passes = torch.stack(
                [F.softmax(self.head(F.dropout(e, self.dropout, True)), 1) for _ in range(MC_PASSES)]
            )
            mc_var = passes.var(dim=0)
            pca = (e - self.mean) @ self.components
            distances, _ = torch.cdist(pca, self.bank).topk(self.k, largest=False)
        return grad_norm.sum().item() + mc_var.sum().item() + distances.sum().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tf_efficientnet_lite0@224")
    parser.add_argument("--kinds", default="forward")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--extract-images", type=int, default=64)
    parser.add_argument("--data", default=os.environ.get("REASON_DATA", "../shared/data"))
    parser.add_argument("--threads", type=int, default=threads_like_candle())
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    args = parser.parse_args()

    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    elif device.type != "cpu":
        sys.exit(f"--device {args.device}: use cpu, cuda or cuda:N")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device} ({where})",
        file=sys.stderr,
    )
    if not args.json:
        print(f"{'model':<24} {'size':>5} {'batch':>6} {'kind':<11} {'images/s':>10}")

    # What PyTorch's kernels dispatched to, beside REASON's own description of the CPU.
    cpu = dict(threads=torch.get_num_threads(), capability=torch.backends.cpu.get_cpu_capability())

    def report(model, size, batch, kind, images_per_s):
        row = dict(model=model, size=size, batch=batch, kind=kind, images_per_s=images_per_s, cpu=cpu)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{model:<24} {size:>5} {batch:>6} {kind:<11} {images_per_s:>10.2f}", flush=True)

    kinds = args.kinds.split(",")
    for spec in args.models.split(","):
        name, size = spec.split("@")
        size = int(size)
        model = build(name, device)
        for batch in (int(b) for b in args.batches.split(",")):
            x = torch.randn(batch, 3, size, size).to(device)
            for kind in kinds:
                if kind == "forward":
                    seconds = best_time(args.repeats, lambda: forward(model, x))
                    report(name, size, batch, kind, batch / seconds)
                elif kind == "input_grad":
                    seconds = best_time(args.repeats, lambda: input_grad(model, x))
                    report(name, size, batch, kind, batch / seconds)
                elif kind == "extract":
                    files = val_files(args.data, args.extract_images)
                    extract = Extractor(model, device)

                    def run_all():
                        for i in range(0, len(files), batch):
                            extract(files[i : i + batch], size)

                    seconds = best_time(max(1, args.repeats - 1), run_all)
                    report(name, size, batch, kind, len(files) / seconds)
                else:
                    sys.exit(f"unknown kind `{kind}` (forward, input_grad, extract)")


if __name__ == "__main__":
    main()
