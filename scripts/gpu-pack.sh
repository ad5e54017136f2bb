#!/usr/bin/env bash
# Stage what scripts/gpu-check.sh needs on the GPU machine into the session checkout's .gpu/
# (the device tool sends that checkout, and `.gpu` must be named in its `carry`):
#
#   .gpu/reason.gz                       the CUDA binary, without debug info, gzipped
#   .gpu/MANIFEST.json                   git commit, features, sha256 of the binary, sizes
#   .gpu/data/weights/<backbone>.safetensors
#   .gpu/data/imagenette/val/<wnid>/*.JPEG   the first N images (by name) of every class
#   .gpu/reason_saved/                   only with --artifacts DIR: by default the checkout's own
#                                        reason_saved/ travels with it and is what the check loads
#   .gpu/scripts/                        gpu-check.sh, gpu_tui_pty.py, gpu_check_summary.py
#   .gpu/bench/torch_reference.py        the PyTorch reference (with --device)
#
#   scripts/gpu-pack.sh [--bin PATH] [--per-class N] [--dest DIR] [--artifacts DIR]
#
# Defaults: the newest of $CARGO_TARGET_DIR/release/reason, ~/.cache/reason/cuda-target/release/
# reason and target/cuda/release/reason (built by scripts/cuda-build.sh); 40 images a class
# (400 images); dest /work/main/.gpu; the checkout's reason_saved/ (not copied: it travels
# anyway, ~12 MB); data $REASON_DATA, else <repo>/../shared/data. Build the binary from the
# same commit as those artifacts. `/.gpu/` is added to the checkout's .git/info/exclude. Everything
# that travels must stay under the device tool's 64 MiB (checked here, with the tracked files).
set -euo pipefail

die() { echo "gpu-pack: $*" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=
per_class=40
dest=/work/main/.gpu
artifacts=
data=${REASON_DATA:-$repo/../shared/data}
backbone=tf_efficientnet_lite0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) shift; bin=$1 ;;
        --per-class) shift; per_class=$1 ;;
        --dest) shift; dest=$1 ;;
        --artifacts) shift; artifacts=$1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

if [ -z "$bin" ]; then
    for candidate in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR/release/reason"} \
        "$HOME/.cache/reason/cuda-target/release/reason" "$repo/target/cuda/release/reason"; do
        [ -x "$candidate" ] || continue
        if [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; then bin=$candidate; fi
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no CUDA binary found: build it with scripts/cuda-build.sh or pass --bin"
readelf -d "$bin" | grep -q 'libcuda.so.1' || die "$bin does not link libcuda.so.1: not a --features cuda build"
checkout=$(dirname "$dest")
# Default: the checkout's own artifacts, which travel with it (gpu-check.sh finds them there).
[ -n "$artifacts" ] || artifacts=$checkout/reason_saved
[ -f "$artifacts/manifest.json" ] || die "no artifacts in $artifacts"
copy_artifacts=1
[ "$(realpath "$artifacts")" = "$(realpath "$checkout")/reason_saved" ] && copy_artifacts=0
weights=$data/weights/$backbone.safetensors
[ -f "$weights" ] || die "no weights at $weights"
[ -d "$data/imagenette/val" ] || die "no Imagenette val split under $data/imagenette"

if [ -d "$checkout/.git" ]; then
    exclude=$checkout/.git/info/exclude
    mkdir -p "$(dirname "$exclude")"
    grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
fi

rm -rf "$dest"
mkdir -p "$dest/data/weights" "$dest/data/imagenette/val" "$dest/scripts" "$dest/bench"

t0=$(date +%s)
features=cuda
readelf -d "$bin" | grep -q 'libcudnn' && features=cudnn
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Debug info out (213 MB to ~77 MB), symbols kept so a panic's backtrace names functions.
strip --strip-debug -o "$tmp" "$bin"
gzip -6 -c "$tmp" >"$dest/reason.gz"
stripped=$(stat -c %s "$tmp")

cp "$weights" "$dest/data/weights/"
[ $copy_artifacts = 1 ] && cp -r "$artifacts" "$dest/reason_saved"
images=0
for class in "$data/imagenette/val"/*/; do
    wnid=$(basename "$class")
    mkdir -p "$dest/data/imagenette/val/$wnid"
    while IFS= read -r file; do
        cp "$class/$file" "$dest/data/imagenette/val/$wnid/"
        images=$((images + 1))
    done < <(ls "$class" | LC_ALL=C sort | head -n "$per_class")
done
cp "$repo/scripts/gpu-check.sh" "$repo/scripts/gpu_tui_pty.py" "$repo/scripts/gpu_check_summary.py" "$dest/scripts/"
cp "$repo/bench/torch_reference.py" "$dest/bench/"

commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
python3 - "$dest/MANIFEST.json" <<EOF
import json, os, sys
json.dump({
    "binary": "$bin",
    "build": json.loads(open("$bin.build.json").read()) if os.path.isfile("$bin.build.json") else None,
    "binary_built": "$(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ)",
    "binary_sha256": "$(sha256sum "$bin" | cut -d' ' -f1)",
    "features": "$features",
    "stripped_bytes": $stripped,
    "gz_bytes": $(stat -c %s "$dest/reason.gz"),
    "packed_from_commit": "$commit",
    "uncommitted_tracked_changes": $dirty,
    "artifacts": "$artifacts" + ("" if $copy_artifacts else " (travels with the checkout)"),
    "artifacts_sha256": "$(cat "$artifacts"/*.json "$artifacts"/*.safetensors | sha256sum | cut -d' ' -f1)",
    "val_images": $images,
    "per_class": $per_class,
}, open(sys.argv[1], "w"), indent=1)
EOF

stage_bytes=$(du -sb "$dest" | cut -f1)
tracked_bytes=0
if [ -d "$checkout/.git" ]; then
    # Tracked files and untracked ones git does not ignore: what the device tool sends.
    tracked_bytes=$(git -C "$checkout" ls-files -z --cached --others --exclude-standard \
        | (cd "$checkout" && xargs -0 stat -c %s 2>/dev/null) | awk '{s += $1} END {print s + 0}')
fi
total=$((stage_bytes + tracked_bytes))
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
echo "gpu-pack: $dest: $(mib "$stage_bytes") (binary $(mib "$(stat -c %s "$dest/reason.gz")") gzipped from $(mib "$stripped") stripped, $images val images); with the rest of the checkout $(mib "$total") of 64 MiB; $(($(date +%s) - t0)) s"
[ "$total" -lt $((60 * 1048576)) ] || die "$(mib "$total") is too close to the device tool's 64 MiB: use --per-class with fewer images"
