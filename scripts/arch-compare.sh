#!/usr/bin/env bash
# Trains every `colorize train --arch` (light preset, its own loss, regression) for the same
# wall-clock budget on ../shared/data/train and evaluates each on the three held-out sets, as
# docs/MODELS.md reports it: an equal-budget comparison on this machine, not converged models.
# Each run is one epoch (96x96 crops of photos loaded at shorter side 128, batch 16, lr 2e-3)
# stopped by --max-minutes; the exported model is then evaluated at render size 128.
#
#   scripts/arch-compare.sh MINUTES OUT_DIR [COLORIZE_BINARY] [ARCH...]
set -euo pipefail
minutes=$1; out=$2; bin=${3:-target/debug/colorize}; shift 3 || shift $#
archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=(plain-cnn resnet18-regressor unet-resnet34 fusion)
data=${DATA:-../shared/data}
for arch in "${archs[@]}"; do
  run="$out/$arch"
  "$bin" train --data "$data/train" --val "$data/val" --val-limit 60 --out "$run" --arch "$arch" \
    --preset light --epochs 1 --batch-size 16 --image-size 96 --load-size 128 --render-size 128 \
    --max-minutes "$minutes" 2>"$run.log" >/dev/null || { echo "$arch failed, see $run.log"; continue; }
  for set in bsds500 intel kodak; do
    json=$("$bin" eval --json --data "$data/val/$set" --model "$run" 2>/dev/null)
    python3 - "$arch" "$set" "$json" <<'PY'
import json, sys
arch, s, v = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
m, g = v["model"], v["gray"]
gap = m["colourfulness"] - v["ground_truth_colourfulness"]
print(f"| {arch} | {s} | {m['psnr']:.2f} | {g['psnr']:.2f} | {m['ssim']:.4f} | {m['colourfulness']:.1f} | {gap:+.1f} |")
PY
  done
done
