#!/usr/bin/env bash
# GPU figures for docs/PERFORMANCE.md: colorize on the GPU (`--device gpu`, burn's Vulkan backend)
# beside PyTorch on the same GPU, with the same network (the U-Net over a ResNet encoder, light and
# resnet34 presets), the same input sizes and the same batch, in one run. Prints a Markdown table
# and writes the raw logs and JSON beside it.
#
#   scripts/gpu-bench.sh [COLORIZE_BINARY] [PHOTO_FOLDER]
#
# COLORIZE_BINARY: a build with `--features gpu` (default target/release/colorize).
# PHOTO_FOLDER: colour photos for the training runs (default ../shared/data/train; 336 are used).
# Needs a Vulkan driver, python3 with torch, numpy and safetensors (scripts/requirements-torch.txt),
# and a CUDA GPU for PyTorch. Results go to $OUT (the device tool's folder) or /tmp/gpu-bench.
#
# What is measured, per preset (light, resnet34) and square size (128, 256):
# - training, photos/s: `colorize train --device gpu`, batch 16, crops of SIZE from photos loaded at
#   SIZE, two epochs of 320 photos; the second epoch's rate (the first compiles and autotunes the
#   kernels). PyTorch: Adam + L1 on the same network and batch, data already on the GPU (so its
#   figure excludes decoding; colorize's includes it, on the CPU, overlapped with the GPU).
# - inference, ms: `colorize bench --device gpu --network-only` (burn's forward, batch 1) on the
#   model the training run exported; PyTorch: the same weights, eval mode, fp32 (TF32 off).
set -euo pipefail
bin=${1:-target/release/colorize}
data=${2:-../shared/data/train}
out=${OUT:-/tmp/gpu-bench}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data" "$work/val"
find -L "$data" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort >"$work/all"
n=$(wc -l <"$work/all")
[ "$n" -ge 336 ] || { echo "error: $data has $n photos; 336 are needed" >&2; exit 1; }
awk -v n="$n" 'NR % int(n / 336) == 0' "$work/all" | head -336 >"$work/list"
i=0
while read -r f; do
  i=$((i + 1))
  if [ "$i" -le 320 ]; then d=data; else d=val; fi
  ln -s "$(realpath "$f")" "$work/$d/$i-$(basename "$f")"
done <"$work/list"

nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>/dev/null || true
ratio() { python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
{
echo "| preset | size | colorize train photos/s | PyTorch train photos/s | ratio | colorize infer ms | PyTorch infer ms | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for preset in light resnet34; do
  for size in 128 256; do
    tag="$preset-$size"
    run="$work/run-$tag"
    "$bin" train --device gpu --data "$work/data" --val "$work/val" --out "$run" \
      --preset "$preset" --epochs 2 --batch-size 16 --image-size "$size" --load-size "$size" \
      --render-size "$size" --val-limit 16 2>"$out/train-$tag.log" >/dev/null
    c_train=$(grep -o '[0-9.]* photos/s' "$out/train-$tag.log" | tail -1 | awk '{print $1}')
    "$bin" bench --device gpu --model "$run" --network-only --batch 0 --iterations 50 \
      --network-size "${size}x${size}" --json >"$out/bench-$tag.json"
    c_infer=$(python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))["network"][0]["median_ms"])' "$out/bench-$tag.json")
    python3 "$here/gpu-bench-torch.py" --model "$run" --device cuda --infer --train \
      --size "$size" --batch 1 --train-batch 16 --iterations 50 --json >"$out/torch-$tag.json"
    read -r t_train t_infer < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print("%.1f %.2f" % (r["train"][0]["photos_per_s"], r["infer"][0]["ms_per_batch"]))' "$out/torch-$tag.json")
    # Ratios are colorize / PyTorch for photos/s (above 1: colorize faster) and PyTorch / colorize
    # for ms (above 1: colorize faster).
    echo "| $preset | $size | $c_train | $t_train | $(ratio "$c_train" "$t_train") | $c_infer | $t_infer | $(ratio "$t_infer" "$c_infer") |"
  done
done
} | tee "$out/table.md"
