#!/usr/bin/env bash
# DDColor on the CPU: colorize's engine beside ONNX Runtime and PyTorch eager, same random weights,
# same threads, one run (docs/PERFORMANCE.md, "DDColor"). For each variant (tiny = ConvNeXt-T,
# large = ConvNeXt-L) and size (256, 512): scripts/ddcolor-bench.py times ONNX Runtime and PyTorch
# (each in its own process, peak RSS included) and saves its seeded random weights in the published
# layout; `colorize import` reads that file, and `colorize bench --network-only` times the engine on
# the same input size under /usr/bin/time (peak RSS of the whole process: weights, arena, scratch).
#
# Usage: scripts/ddcolor-bench.sh [COLORIZE_BINARY] [WORKDIR]
#   PYTHON (default /tmp/torchenv/bin/python: torch, onnx, onnxruntime, numpy, safetensors from pip),
#   THREADS (2), RUNS (3), VARIANTS ("tiny large"), SIZES ("256 512").
# Needs about 4 GB of disk in WORKDIR (the large checkpoint, its model folder, the ONNX file).
set -euo pipefail
BIN=${1:-target/release/colorize}
WORK=${2:-/tmp/ddcolor-bench}
PYTHON=${PYTHON:-/tmp/torchenv/bin/python}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
VARIANTS=${VARIANTS:-"tiny large"}
SIZES=${SIZES:-"256 512"}
mkdir -p "$WORK"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) logical CPUs; threads $THREADS; $(date -u +%FT%TZ)"
for v in $VARIANTS; do
  args=()
  for s in $SIZES; do args+=(--size "$s"); done
  "$PYTHON" scripts/ddcolor-bench.py --variant "$v" "${args[@]}" --threads "$THREADS" --runs "$RUNS" \
    --save-checkpoint "$WORK/ddcolor-$v.pth"
  "$BIN" import "$WORK/ddcolor-$v.pth" --kind "ddcolor-$v" --out "$WORK/$v" --overwrite
  for s in $SIZES; do
    out=$(/usr/bin/time -f "peak_rss_kib %M" "$BIN" bench --model "$WORK/$v" --network-only \
      --network-size "${s}x${s}" --iterations "$RUNS" --threads "$THREADS" --batch 0 2>&1)
    ms=$(echo "$out" | awk '$2 == "native" {print $3}')
    arena=$(echo "$out" | sed -n 's/.*arena at [0-9x]*: \([0-9]*\) MiB.*/\1/p')
    peak=$(echo "$out" | awk '/^peak_rss_kib/ {printf "%.1f", $2 / 1024}')
    echo "{\"framework\": \"colorize\", \"variant\": \"$v\", \"size\": $s, \"threads\": $THREADS, \"ms_median\": $ms, \"arena_mib\": $arena, \"peak_rss_mib\": $peak}"
  done
done
