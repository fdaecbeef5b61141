#!/usr/bin/env bash
# Trains every `colorize train --arch` (light preset, its own loss, regression) for the same number
# of steps on a fifth of ../shared/data/train (every 5th photo, about 1,500) and evaluates each on
# the three held-out sets, as docs/MODELS.md reports it: an equal-budget comparison, not converged
# models. Each run: EPOCHS epochs of 96x96 crops of photos loaded at shorter side 128, batch 16,
# AdamW at 2e-3 with warm-up and cosine decay, the best epoch (by PSNR on 60 validation photos)
# exported and evaluated at render size 128.
#
#   scripts/arch-compare.sh EPOCHS OUT_DIR [COLORIZE_BINARY] [ARCH...]
set -euo pipefail
epochs=$1; out=$2; bin=${3:-target/debug/colorize}; shift 3 || shift $#
archs=("$@"); [ ${#archs[@]} -gt 0 ] || archs=(plain-cnn resnet18-regressor unet-resnet34 fusion)
data=${DATA:-../shared/data}
mkdir -p "$out/subset"
if [ -z "$(ls -A "$out/subset")" ]; then
  find "$data/train" -type f \( -iname '*.jpg' -o -iname '*.png' \) | sort | awk 'NR % 5 == 0' |
    while read -r f; do ln -s "$(realpath "$f")" "$out/subset/$(basename "$(dirname "$f")")-$(basename "$f")"; done
fi
echo "| architecture | set | PSNR dB | gray PSNR | SSIM | colourfulness | gap to truth | training s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for arch in "${archs[@]}"; do
  run="$out/$arch"
  "$bin" train --data "$out/subset" --val "$data/val" --val-limit 60 --out "$run" --arch "$arch" \
    --preset light --epochs "$epochs" --batch-size 16 --image-size 96 --load-size 128 \
    --render-size 128 2>"$run.log" >/dev/null || { echo "$arch failed, see $run.log"; continue; }
  secs=$(tail -1 "$run/metrics.csv" | cut -d, -f3)
  for set in bsds500 intel kodak; do
    json=$("$bin" eval --json --data "$data/val/$set" --model "$run" 2>/dev/null)
    python3 - "$arch" "$set" "$secs" "$json" <<'PY'
import json, sys
arch, s, secs, v = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
m, g = v["model"], v["gray"]
gap = m["colourfulness"] - v["ground_truth_colourfulness"]
print(f"| {arch} | {s} | {m['psnr']:.2f} | {g['psnr']:.2f} | {m['ssim']:.4f} | {m['colourfulness']:.1f} | {gap:+.1f} | {float(secs):.0f} |")
PY
  done
done
