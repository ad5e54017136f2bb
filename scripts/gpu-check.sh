#!/usr/bin/env bash
# The CUDA build's check, run ON the GPU machine (no Rust toolchain, no network; python3 with
# torch and timm; the NVIDIA driver; CUDA 13 runtime libraries in torch's environment). It uses
# only what scripts/gpu-pack.sh staged into .gpu/ (binary, weights, a val slice, a copy of these
# scripts) and the checkout's reason_saved/, and takes a few minutes:
#
#   1. device and build: nvidia-smi, the staged binary's manifest, the libraries it resolves;
#   2. `reason predict --json --summary` on the GPU: Lite0's 1000-way and 10-class accuracy;
#   3. the same on the CPU, and the CPU-vs-GPU differences per image (logits, PCA embedding,
#      gradient norm, P(correct), ...), each run with its own empty cache;
#   4. `reason bench --json` forward / input_grad / extract at batch 1, 16, 64, beside
#      `bench/torch_reference.py --device cuda` (ratios REASON / PyTorch);
#   5. the wall time of `reason eval` on the val slice (own empty cache);
#   6. `reason tui --device cuda` in a pseudo-terminal: device in the title, scoring progresses,
#      `q` quits with exit code 0.
#
# Prints ONE JSON summary as the last line (also $OUT/summary.json when $OUT is set, with the
# logs as $OUT/logs.txt and the dashboard's last screen as $OUT/tui_screen.txt).
#
#   bash .gpu/scripts/gpu-check.sh              # on the GPU machine, from the repository root
#   bash .gpu/scripts/gpu-check.sh --device cpu # plumbing test anywhere: "GPU" steps on the CPU
#
# Every step has a time limit, and no step starts once GPU_CHECK_BUDGET seconds (default 300)
# have passed, so the whole run stays under 8 minutes (expected: 2 to 4). The first CUDA step
# also pays for the driver compiling candle's PTX kernels (cached for the later steps).
set -uo pipefail

device=cuda
while [ $# -gt 0 ]; do
    case "$1" in
        --device) shift; device=${1:?--device needs cpu or cuda[:N]} ;;
        --device=*) device=${1#--device=} ;;
        -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift
done

here=$(cd "$(dirname "$0")" && pwd)
stage=${GPU_STAGE:-$(dirname "$here")}
[ -f "$stage/reason.gz" ] || stage=$PWD/.gpu
[ -f "$stage/reason.gz" ] || { echo "gpu-check: no reason.gz in $stage (run scripts/gpu-pack.sh first)" >&2; exit 2; }
budget=${GPU_CHECK_BUDGET:-300}
work=${GPU_CHECK_WORK:-/tmp/reason-gpu-check}
rm -rf "$work" && mkdir -p "$work/steps"
log=$work/logs.txt
: >"$log"
t_start=$(date +%s.%N)

# ---- environment -------------------------------------------------------------------------
gunzip -c "$stage/reason.gz" >"$work/reason" && chmod +x "$work/reason"
reason=$work/reason
export REASON_DATA=$stage/data
val=$REASON_DATA/imagenette/val
# Artifacts staged with --artifacts, else the checkout's own (the folder above .gpu).
artifacts=$stage/reason_saved
[ -f "$artifacts/manifest.json" ] || artifacts=$(dirname "$stage")/reason_saved
# The CUDA 13 libraries of torch's environment (the nvidia-* wheels' lib folders).
nvlibs=$(python3 -c '
import glob, os, site, sys
roots = [p for p in sys.path if p.endswith("-packages")] + site.getsitepackages()
dirs = sorted({d for r in roots for d in glob.glob(os.path.join(r, "nvidia", "*", "lib"))})
print(":".join(dirs))' 2>/dev/null)
export LD_LIBRARY_PATH=${nvlibs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# libcuda.so.1 comes with the driver; if the loader does not know where, look where drivers live
# (never a toolkit's stubs/ folder: that libcuda only links).
if ldd "$reason" | grep -q 'libcuda.so.1 => not found'; then
    for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/cuda/compat; do
        if [ -e "$dir/libcuda.so.1" ]; then
            export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$dir
            break
        fi
    done
fi
export RUST_BACKTRACE=1
{
    echo "== environment"
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    nvidia-smi 2>&1 | head -15
    ldd "$reason" 2>&1
} >>"$log"

# step NAME TIMEOUT CMD...: runs CMD with stdout/stderr in steps/NAME.{out,err}, records
# seconds and exit code in steps/NAME.json; skipped once the budget is spent.
step() {
    local name=$1 limit=$2
    shift 2
    local now
    now=$(date +%s.%N)
    if python3 -c "import sys; sys.exit(0 if $now - $t_start > $budget else 1)"; then
        echo "{\"skipped\": \"time budget of ${budget}s spent\"}" >"$work/steps/$name.json"
        echo "== $name: skipped (budget)" >>"$log"
        return
    fi
    echo "== $name: $*" >>"$log"
    local t0 rc t1
    t0=$(date +%s.%N)
    timeout --kill-after=10 "$limit" "$@" >"$work/steps/$name.out" 2>"$work/steps/$name.err"
    rc=$?
    t1=$(date +%s.%N)
    python3 -c "import json; print(json.dumps({'rc': $rc, 'seconds': round($t1 - $t0, 2), 'timed_out': $rc in (124, 137)}))" \
        >"$work/steps/$name.json"
    { tail -c 3000 "$work/steps/$name.err"; echo "-- rc=$rc"; } >>"$log"
}

ldd "$reason" | grep -q 'not found' && echo "gpu-check: libraries not found: $(ldd "$reason" | grep 'not found' | tr -s ' \t' ' ')" >>"$log"
step version 20 "$reason" --version

# ---- 2-3. predict on the device and on the CPU, same images, separate caches -------------
REASON_CACHE=$work/cache-dev step predict_dev 120 \
    "$reason" predict --device "$device" --json --summary --artifacts "$artifacts" "$val"
REASON_CACHE=$work/cache-cpu step predict_cpu 150 \
    "$reason" predict --device cpu --json --summary --artifacts "$artifacts" "$val"

# ---- 4. throughput, REASON and PyTorch ---------------------------------------------------
REASON_CACHE=$work/cache-bench step bench_reason 120 \
    "$reason" bench --device "$device" --json --models tf_efficientnet_lite0@224 \
    --kinds forward,input_grad,extract --batches 1,16,64 --decode-images 0 \
    --artifacts "$artifacts"
step bench_torch 120 \
    python3 "$stage/bench/torch_reference.py" --device "$device" --json \
    --models tf_efficientnet_lite0@224 --kinds forward,input_grad,extract --batches 1,16,64 \
    --data "$REASON_DATA"

# ---- 5. eval ------------------------------------------------------------------------------
REASON_CACHE=$work/cache-eval step eval 150 \
    "$reason" eval --device "$device" --artifacts "$artifacts" --data "$REASON_DATA/imagenette" \
    --split val --plots "$work/eval_plots" --json "$work/eval.json"

# ---- 6. the dashboard in a pseudo-terminal -------------------------------------------------
expect=$device
[ "$device" = cuda ] && expect=cuda:0
mkdir -p "$work/tui"
(cd "$work/tui" && REASON_CACHE=$work/cache-tui step tui 130 \
    python3 "$here/gpu_tui_pty.py" --expect "$expect" --timeout 100 --screen "$work/tui_screen.txt" \
    -- "$reason" tui --device "$device" --folder "$val" --artifacts "$artifacts" \
    --session gpu-check --image-protocol halfblocks)

# ---- summary ---------------------------------------------------------------------------------
python3 "$here/gpu_check_summary.py" --work "$work" --stage "$stage" --device "$device" --artifacts "$artifacts" \
    --seconds "$(python3 -c "import time; print(round(time.time() - $t_start, 1))")" \
    >"$work/summary.json" 2>>"$log"
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then
    cp "$work/summary.json" "$log" "$OUT/"
    [ -f "$work/tui_screen.txt" ] && cp "$work/tui_screen.txt" "$OUT/"
    [ -f "$work/eval.json" ] && gzip -c "$work/eval.json" >"$OUT/eval.json.gz"
fi
tail -c 4000 "$log" >&2
cat "$work/summary.json"
# Exit 0 only when every step passed (the summary's "ok").
python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("ok") else 1)' "$work/summary.json"
