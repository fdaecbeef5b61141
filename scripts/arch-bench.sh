#!/usr/bin/env bash
# Parameters and inference time of every `colorize train --arch` at the light and full
# (`resnet34`) presets, as docs/MODELS.md reports them: each network is initialised by a one-step
# training run (random weights; the time does not depend on them) and timed with
# `colorize bench --network-only` (the engine's forward pass, median of 10) at 256x256.
# Don't compile while it runs.
#
#   scripts/arch-bench.sh [COLORIZE_BINARY]
set -euo pipefail
bin=${1:-target/debug/colorize}
data=${DATA:-../shared/data/val/kodak}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data"
find "$data" -maxdepth 1 -type f \( -iname "*.png" -o -iname "*.jpg" \) | sort | head -6 | while read -r f; do ln -s "$(realpath "$f")" "$work/data/"; done
params() {
  python3 - "$1/model.safetensors" <<'PY'
import json, struct, sys, math
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
# Trained weights only: batch-norm running statistics and spectral-norm u, v are buffers.
skip = ("running_mean", "running_var", "weight_u", "weight_v", "num_batches_tracked")
print(sum(math.prod(v["shape"]) for k, v in h.items() if k != "__metadata__" and not k.endswith(skip)))
PY
}
echo "| architecture | preset | parameters | ms at 256x256 |"
echo "|---|---|---:|---:|"
for arch in plain-cnn resnet18-regressor unet-resnet34 fusion; do
  for preset in light resnet34; do
    run="$work/$arch-$preset"
    "$bin" train --data "$work/data" --out "$run" --arch "$arch" --preset "$preset" --epochs 1 \
      --max-minutes 0.001 --batch-size 2 --image-size 64 --load-size 64 --render-size 128 \
      >/dev/null 2>&1
    ms=$("$bin" bench --model "$run" --network-only --network-size 256x256 --iterations 10 2>&1 |
      awk '$1 == "256x256" && $2 == "native" {print $3}')
    echo "| $arch | $preset | $(params "$run") | $ms |"
  done
done
