#!/usr/bin/env python3
"""Summarise a scripts/gpu-check.sh run as one JSON object (standard library only).

Reads <work>/steps/<name>.{json,out,err} and <stage>/MANIFEST.json; prints the summary.
"""

import argparse
import hashlib
import json
import math
import re
import subprocess
from pathlib import Path


def load_step(work, name):
    base = Path(work) / "steps" / name
    info = {}
    if (base.with_suffix(".json")).is_file():
        info = json.loads(base.with_suffix(".json").read_text())
    out = base.with_suffix(".out").read_text(errors="replace") if base.with_suffix(".out").is_file() else ""
    err = base.with_suffix(".err").read_text(errors="replace") if base.with_suffix(".err").is_file() else ""
    return info, out, err


def tail(text, lines=6):
    return [line for line in text.strip().splitlines()[-lines:]]


def json_lines(text):
    rows = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def device_line(err):
    return next((line for line in err.splitlines() if line.startswith("device:")), None)


def predict_summary(out):
    """The text lines `reason predict --summary` prints after the JSON lines."""
    text = [line for line in out.splitlines() if line and not line.startswith("{")]
    found = {}
    for line in text:
        if m := re.match(r"top-1 accuracy, all 1000 classes:\s+(.*)", line):
            found["imagenet_1000_way"] = m.group(1)
        elif m := re.match(r"top-1 accuracy, the dataset's (\d+) classes:\s+(.*)", line):
            found[f"restricted_{m.group(1)}_way"] = m.group(2)
        elif m := re.match(r"trained head on the (\d+) trained classes:\s+(.*)", line):
            found[f"trained_head_{m.group(1)}_way"] = m.group(2)
        elif line.startswith("P(correct) >="):
            found["selective"] = line
        elif line.startswith("throughput:"):
            found["throughput"] = line
        elif line.startswith("images:"):
            found["images"] = line
    return found


def max_abs(pairs):
    diffs = [abs(a - b) for a, b in pairs if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    return max(diffs) if diffs else None


def compare(dev_rows, cpu_rows):
    cpu = {r["path"]: r for r in cpu_rows}
    both = [(r, cpu[r["path"]]) for r in dev_rows if r["path"] in cpu]
    if not both:
        return {"images_compared": 0}
    groups = {}

    def add(group, a, b):
        groups.setdefault(group, []).append((a, b))

    agree = {"imagenet_top1": 0, "head_pred": 0, "verdict": 0}
    for g, c in both:
        if g["top5"] and c["top5"] and g["top5"][0]["wnid"] == c["top5"][0]["wnid"]:
            agree["imagenet_top1"] += 1
        gp = {p["wnid"]: p["prob"] for p in g["top5"]}
        for p in c["top5"]:
            if p["wnid"] in gp:
                add("imagenet_top5_probs", gp[p["wnid"]], p["prob"])
        gr, cr = g.get("reliability"), c.get("reliability")
        if not gr or not cr:
            continue
        agree["head_pred"] += gr["pred"] == cr["pred"]
        agree["verdict"] += gr["verdict"] == cr["verdict"]
        add("p_correct", gr["p_correct"], cr["p_correct"])
        hp = {p["class"]: p["prob"] for p in gr["head_top5"]}
        for p in cr["head_top5"]:
            if p["class"] in hp:
                add("head_probs", hp[p["class"]], p["prob"])
        gs, cs = gr["diagnostics"]["grad_sensitivity"], cr["diagnostics"]["grad_sensitivity"]
        if gs > 0 and cs > 0:
            add("grad_norm_relative", gs / cs, 1.0)
        for name, value in cr["meta"].items():
            other = gr["meta"].get(name)
            family = name.split(".")[0]
            label = {
                "topk": "logits_top5 (topk.logit_*)",
                "pca": "embedding_pca (pca.*)",
                "gradient": "log_grad_norm (gradient.*)",
            }.get(family, f"{family}.*")
            add(label, other, value)
    n = len(both)
    return {
        "images_compared": n,
        "agreement": {k: f"{v}/{n}" for k, v in agree.items()},
        "max_abs_diff": {k: max_abs(v) for k, v in sorted(groups.items())},
    }


def bench(reason_rows, torch_rows):
    torch = {(r["kind"], r["batch"]): r["images_per_s"] for r in torch_rows}
    rows = []
    for r in reason_rows:
        if r.get("kind") == "decode":
            continue
        t = torch.get((r["kind"], r["batch"]))
        rows.append(
            {
                "kind": r["kind"],
                "batch": r["batch"],
                "reason_images_per_s": round(r["images_per_s"], 2),
                "torch_images_per_s": round(t, 2) if t else None,
                "reason_over_torch": round(r["images_per_s"] / t, 3) if t else None,
            }
        )
    return rows


def gpu_info():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20,
        )
        return out.stdout.strip() or out.stderr.strip()
    except Exception as e:  # noqa: BLE001 - any failure is reported, not raised
        return f"nvidia-smi failed: {e}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--stage", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--artifacts", help="the artifacts folder the check used")
    args = parser.parse_args()

    manifest_path = Path(args.stage) / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    steps = {}
    for name in ["version", "predict_dev", "predict_cpu", "bench_reason", "bench_torch", "eval", "tui"]:
        steps[name] = load_step(args.work, name)
    summary = {"seconds_total": args.seconds, "device_requested": args.device}

    info, out, err = steps["predict_dev"]
    summary["device"] = {
        "gpu": gpu_info(),
        "reason_says": device_line(err),
        "version": steps["version"][1].strip(),
    }
    summary["build"] = manifest
    if args.artifacts and manifest.get("artifacts_sha256"):
        # Same bytes, same order as gpu-pack.sh: *.json then *.safetensors, by name.
        folder = Path(args.artifacts)
        files = sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors"))
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
        summary["build"]["artifacts_as_packed"] = digest == manifest["artifacts_sha256"]
    dev_rows = json_lines(out)
    summary["accuracy"] = {**predict_summary(out), **info, "json_rows": len(dev_rows)}
    if info.get("rc"):
        summary["accuracy"]["stderr_tail"] = tail(err)

    cinfo, cout, cerr = steps["predict_cpu"]
    summary["cpu_vs_device"] = {**compare(dev_rows, json_lines(cout)), "cpu_run": cinfo,
                                "cpu_throughput": predict_summary(cout).get("throughput")}
    if cinfo.get("rc"):
        summary["cpu_vs_device"]["stderr_tail"] = tail(cerr)

    rinfo, rout, rerr = steps["bench_reason"]
    tinfo, tout, terr = steps["bench_torch"]
    summary["bench"] = {
        "rows": bench(json_lines(rout), json_lines(tout)),
        "reason_run": rinfo,
        "torch_run": tinfo,
        "reason_says": device_line(rerr),
        "torch_says": next((l for l in terr.splitlines() if l.startswith("torch ")), None),
    }
    if rinfo.get("rc"):
        summary["bench"]["reason_stderr_tail"] = tail(rerr)
    if tinfo.get("rc"):
        summary["bench"]["torch_stderr_tail"] = tail(terr)

    einfo, eout, eerr = steps["eval"]
    lines = eout.strip().splitlines()
    wanted = ("split ", "metanet_p_correct ", "msp ", "operating threshold", "certified", "  on these rows")
    key = [l for l in lines if l.startswith(wanted)][:8]
    summary["eval"] = {**einfo, "key_lines": key}
    if einfo.get("rc"):
        summary["eval"]["stderr_tail"] = tail(eerr)

    uinfo, uout, uerr = steps["tui"]
    tui_rows = json_lines(uout)
    summary["tui"] = {**uinfo, **(tui_rows[-1] if tui_rows else {"stderr_tail": tail(uerr)})}
    summary["tui"].pop("command", None)

    ran = [s[0] for s in steps.values()]
    summary["ok"] = all(i.get("rc") == 0 for i in ran) and bool(summary["tui"].get("ok"))
    print(json.dumps(summary, separators=(",", ":")))


if __name__ == "__main__":
    main()
