#!/usr/bin/env bash
# Sweeps render size and saturation for a model directory over the held-out sets and prints one
# row per setting: PSNR (model and gray), SSIM and colourfulness per set. This is how the bundled
# model's defaults (render size, saturation) were chosen; see models/stable/MODEL_CARD.md.
#
# usage: scripts/eval-sweep.sh MODEL_DIR "96 128 160" "0.8 1.0 1.2" [SETS...]
set -euo pipefail
model="$1"; sizes="$2"; sats="$3"; shift 3
sets=("$@"); [ ${#sets[@]} -gt 0 ] || sets=(bsds500 intel kodak)
bin="${COLORIZE_BIN:-target/debug/colorize}"
printf '%-6s %-5s' render sat
for s in "${sets[@]}"; do printf ' | %-28s' "$s psnr/gray/ssim/cf"; done; echo
for r in $sizes; do
  for k in $sats; do
    printf '%-6s %-5s' "$r" "$k"
    for s in "${sets[@]}"; do
      json=$("$bin" eval --json --data "../shared/data/val/$s" --model "$model" --render-size "$r" --saturation "$k" 2>/dev/null)
      python3 - "$json" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
print(f" | {v['model']['psnr']:6.2f} {v['gray']['psnr']:6.2f} {v['model']['ssim']:.4f} {v['model']['colourfulness']:5.1f}", end="")
PY
    done
    echo
  done
done
