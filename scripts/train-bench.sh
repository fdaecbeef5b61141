#!/usr/bin/env bash
# Training throughput (photos/s at 128x128, batch 16, light preset) of every architecture under
# every schedule, as docs/PERFORMANCE.md reports it. Each run trains one epoch over a 160-photo
# subset of ../shared/data/train (10 steps); NoGAN adds a 10-step critic-pretraining round and a
# 10-step GAN round. Prints a Markdown table: one column per phase. Don't compile while it runs.
#
#   scripts/train-bench.sh [COLORIZE_BINARY]
set -euo pipefail
bin=${1:-target/debug/colorize}
data=${DATA:-../shared/data/train}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/data" "$work/val"
find "$data" -type f \( -iname '*.jpg' -o -iname '*.png' \) | sort | awk 'NR % 40 == 1' | head -168 >"$work/list"
head -160 "$work/list" | while read -r f; do ln -s "$(realpath "$f")" "$work/data/$(basename "$(dirname "$f")")-$(basename "$f")"; done
tail -8 "$work/list" | while read -r f; do ln -s "$(realpath "$f")" "$work/val/$(basename "$f")"; done
echo "| architecture | schedule | regression / pix2pix epoch | critic pretraining | GAN round |"
echo "|---|---|---:|---:|---:|"
for arch in plain-cnn resnet18-regressor unet-resnet34 fusion; do
  for schedule in regression pix2pix nogan; do
    log="$work/$arch-$schedule.log"
    "$bin" train --data "$work/data" --val "$work/val" --out "$work/run-$arch-$schedule" \
      --arch "$arch" --schedule "$schedule" --preset light --epochs 1 --batch-size 16 \
      --image-size 128 --load-size 128 --render-size 128 \
      --critic-steps 10 --gan-steps 10 --gan-round-steps 10 2>"$log" >/dev/null
    rates=$(grep -o '[0-9.]* photos/s' "$log" | awk '{print $1}' | paste -sd' ')
    read -r -a r <<<"$rates"
    case $schedule in
      regression) echo "| $arch | regression | ${r[0]} | | |" ;;
      pix2pix) echo "| $arch | pix2pix | ${r[0]} | | |" ;;
      nogan) echo "| $arch | nogan | ${r[0]} | ${r[1]} | ${r[2]} |" ;;
    esac
  done
done
