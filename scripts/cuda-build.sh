#!/usr/bin/env bash
# Build `reason` with CUDA (`--features cuda`, optionally `cudnn`) on a machine that has no GPU,
# no driver and no system CUDA toolkit: everything comes from PyPI's CUDA 13.0 wheels.
#
#   scripts/cuda-build.sh                    # toolkit (once), then cargo build --release --features cuda
#   scripts/cuda-build.sh --cudnn            # ... --features cudnn (also installs nvidia-cudnn-cu13)
#   scripts/cuda-build.sh --toolkit-only     # set up the toolkit and the link folder, build nothing
#   scripts/cuda-build.sh --print-env        # print the `export` lines (eval them for cargo check/clippy)
#   scripts/cuda-build.sh -- --bin reason    # anything after `--` goes to cargo build
#
# Measured on the 2-core build machine: first build ~40 min (candle-kernels' nvcc runs are a
# third of it), a rebuild after a change under src/ ~2 min, --cudnn on top of a cuda build ~7 min
# (cudarc and candle again). The cudnn binary needs libcudnn.so.9 (any cuDNN 9) at run time.
#
# Environment (all optional):
#   REASON_CUDA_HOME   where the toolkit venv and the link folder live (default ~/.cache/reason/cuda);
#                      outside the repository, shared by every clone and worktree.
#   CARGO_TARGET_DIR   cargo's target folder (default target/cuda, apart from the CPU build's target/).
#   CUDA_COMPUTE_CAP   the GPU generation the kernels are compiled for (default 90: H100/H200).
#                      candle-kernels compiles for this one capability only. Up to 89 the PTX also
#                      runs on newer GPUs (the driver compiles it at start); 90 and above build the
#                      arch-specific variant (90 means sm_90a), which runs on that generation only.
#                      Others: 80 A100/A30, 86 RTX 30xx/A10/A40, 89 L4/L40/RTX 40xx, 100 B200,
#                      120 RTX 50xx, 75 T4/RTX 20xx. On a machine with the GPU,
#                      `nvidia-smi --query-gpu=compute_cap --format=csv` tells (drop the dot).
#                      A different value rebuilds candle-kernels (about 10 minutes here).
#
# Why CUDA 13.0 exactly: the H200 machines run driver 580 (CUDA 13.0). PTX produced by a newer
# toolkit (e.g. nvvm 13.5 emits PTX ISA 9.5) is refused by that driver and by the 13.0 ptxas, so
# every compiler piece is pinned to 13.0.x. The libraries are only linked against here; at run time
# the binary loads whatever libcublas.so.13/libcudart.so.13/... the GPU machine provides.
#
# The link folder holds unversioned .so symlinks to the wheels' libraries and a STUB libcuda.so.1
# (every cu* entry point, each returning CUDA_ERROR_UNKNOWN) that exists for the linker only: the
# real libcuda.so.1 comes with the NVIDIA driver. The folder goes on LIBRARY_PATH (link time) and
# never on LD_LIBRARY_PATH, and the script checks that the binary records no RPATH/RUNPATH to it.
set -euo pipefail

die() { echo "cuda-build: $*" >&2; exit 1; }
now() { date +%s; }
elapsed() { local s=$(($(now) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

features=cuda
toolkit_only=0
print_env=0
cargo_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cudnn) features=cudnn ;;
        --features)
            shift
            case "${1:-}" in
                cuda) features=cuda ;;
                cudnn | cuda,cudnn | cudnn,cuda) features=cudnn ;;
                *) die "--features takes cuda or cudnn, got '${1:-}'" ;;
            esac
            ;;
        --features=*)
            case "${1#--features=}" in
                cuda) features=cuda ;;
                cudnn | cuda,cudnn | cudnn,cuda) features=cudnn ;;
                *) die "--features takes cuda or cudnn, got '${1#--features=}'" ;;
            esac
            ;;
        --toolkit-only) toolkit_only=1 ;;
        --print-env) print_env=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --) shift; cargo_args=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

repo=$(cd "$(dirname "$0")/.." && pwd)
home=${REASON_CUDA_HOME:-$HOME/.cache/reason/cuda}
venv=$home/venv
link=$home/link
compute_cap=${CUDA_COMPUTE_CAP:-90}
case "$compute_cap" in
    [1-9][0-9] | [1-9][0-9][0-9] | [1-9][0-9][af] | [1-9][0-9][0-9][af]) ;;
    *) die "CUDA_COMPUTE_CAP must look like 90, 86, 120 or 90a, got '$compute_cap'" ;;
esac

# Every piece of the 13.0 toolkit that candle-kernels' nvcc run and the final link need.
packages=(
    nvidia-cuda-nvcc==13.0.88
    "nvidia-nvvm==13.0.*"
    "nvidia-cuda-crt==13.0.*"
    "nvidia-cuda-runtime==13.0.*"
    "nvidia-cuda-cccl==13.0.*"
    "nvidia-cublas==13.0.*"
    "nvidia-cuda-nvrtc==13.0.*"
    "nvidia-curand==10.4.0.*" # curand's CUDA 13.0 release
)
if [ "$features" = cudnn ]; then
    packages+=("nvidia-cudnn-cu13==9.*")
fi

# ---- 1. toolkit venv (idempotent: a stamp records what was installed) -----------------------
t0=$(now)
mkdir -p "$home"
stamp=$venv/.reason-toolkit
want=$(printf '%s\n' "${packages[@]}")
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    [ $print_env = 1 ] || echo "cuda-build: toolkit already in $venv"
else
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "python3 -m venv failed (install python3-venv?)"
    echo "cuda-build: installing the CUDA 13.0 toolkit wheels into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "${packages[@]}" >&2 \
        || die "pip could not install the CUDA 13.0 wheels (needs PyPI): ${packages[*]}"
    printf '%s\n' "$want" >"$stamp"
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cuda_root=$site/nvidia/cu13
[ -x "$cuda_root/bin/nvcc" ] || die "no nvcc at $cuda_root/bin/nvcc: the nvidia-cuda-nvcc wheel's layout changed?"
[ -f "$cuda_root/include/cuda.h" ] || die "no cuda.h in $cuda_root/include"
t_toolkit=$(elapsed "$t0")

# ---- 2. link folder: unversioned symlinks + a link-only stub libcuda.so.1 -------------------
t0=$(now)
mkdir -p "$link"
libdirs=("$cuda_root/lib")
[ "$features" = cudnn ] && libdirs+=("$site/nvidia/cudnn/lib")
for name in cublas cublasLt cudart curand nvrtc cudnn; do
    [ "$name" = cudnn ] && [ "$features" != cudnn ] && continue
    real=$(find "${libdirs[@]}" -maxdepth 1 -name "lib$name.so.*" 2>/dev/null | sort | head -n1)
    [ -n "$real" ] || die "lib$name.so.* not found in ${libdirs[*]}"
    ln -sfn "$real" "$link/lib$name.so"
done
if [ ! -f "$link/libcuda.so.1" ] || [ "$cuda_root/include/cuda.h" -nt "$link/libcuda.so.1" ]; then
    # The driver API's entry points: those of the preprocessed header (what `#define cuX cuX_v2`
    # resolves to) plus every cu* name declared in the raw header (older unsuffixed versions).
    {
        cc -E -P -I"$cuda_root/include" "$cuda_root/include/cuda.h" 2>/dev/null
        cat "$cuda_root/include/cuda.h"
    } | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' \t(' | sort -u >"$link/libcuda.symbols"
    [ "$(wc -l <"$link/libcuda.symbols")" -gt 200 ] || die "found too few cu* functions in cuda.h"
    {
        echo '/* LINK-ONLY stub of the NVIDIA driver library, generated by scripts/cuda-build.sh. */'
        echo '/* Never load it: every function returns CUDA_ERROR_UNKNOWN (999). */'
        sed 's/.*/int &(void) { return 999; }/' "$link/libcuda.symbols"
    } >"$link/libcuda-stub.c"
    cc -shared -fPIC -w -Wl,-soname,libcuda.so.1 -o "$link/libcuda.so.1" "$link/libcuda-stub.c" \
        || die "could not compile the link-only libcuda stub"
fi
ln -sfn libcuda.so.1 "$link/libcuda.so"
t_link=$(elapsed "$t0")

export CUDA_ROOT=$cuda_root
export CUDA_PATH=$cuda_root
export PATH=$cuda_root/bin:$PATH
export LIBRARY_PATH=$link${LIBRARY_PATH:+:$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=$compute_cap

if [ $print_env = 1 ]; then
    printf 'export CUDA_ROOT=%q CUDA_PATH=%q CUDA_COMPUTE_CAP=%q\n' "$CUDA_ROOT" "$CUDA_PATH" "$CUDA_COMPUTE_CAP"
    printf 'export PATH=%q\n' "$PATH"
    printf 'export LIBRARY_PATH=%q\n' "$LIBRARY_PATH"
    exit 0
fi
echo "cuda-build: toolkit $t_toolkit, link folder $t_link ($CUDA_ROOT, compute cap $CUDA_COMPUTE_CAP)"
[ $toolkit_only = 1 ] && exit 0

# ---- 3. cargo build ----------------------------------------------------------------------
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target/cuda}
t0=$(now)
echo "cuda-build: cargo build --release --features $features (target dir $CARGO_TARGET_DIR)"
cargo build --release --features "$features" ${cargo_args[@]+"${cargo_args[@]}"}
t_cargo=$(elapsed "$t0")

bin=$CARGO_TARGET_DIR/release/reason
if [ -x "$bin" ]; then
    # The stub is for linking only: the binary must not look for libraries in the link folder.
    if readelf -d "$bin" | grep -E 'RPATH|RUNPATH' | grep -qF "$link"; then
        die "$bin records the link-only folder $link in its RPATH/RUNPATH"
    fi
    needed=$(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
    echo "cuda-build: $bin ($(du -h "$bin" | cut -f1)); needs at run time: $needed"
    # What this binary was built from (read by scripts/gpu-pack.sh; the binary itself cannot
    # run here without the driver's libcuda.so.1).
    printf '{"source": "%s", "commit": "%s", "uncommitted_tracked_changes": %s, "features": "%s", "compute_cap": "%s", "built": "%s"}\n' \
        "$repo" "$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
        "$(git status --porcelain --untracked-files=no 2>/dev/null | wc -l)" "$features" \
        "$CUDA_COMPUTE_CAP" "$(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ)" >"$bin.build.json"
fi
echo "cuda-build: timings: toolkit $t_toolkit, link folder $t_link, cargo build $t_cargo"
