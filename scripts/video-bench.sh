#!/usr/bin/env bash
# Frames per second and peak memory of `colorize video` with the bundled model (docs/PERFORMANCE.md).
#
# Builds test clips with FFmpeg from a Kodak photo in ../shared/data/val (a slow zoom and pan, made
# gray, H.264 at 30000/1001 fps, with a 440 Hz AAC tone), then times `colorize video` on them with
# /usr/bin/time (wall time and the process tree's peak resident memory, FFmpeg's children included
# as waited-for children; the largest single process is what %M reports).
#
#   cargo build --release && scripts/video-bench.sh target/release/colorize [fps|memory|all]
#
# fps:    20-second clips at 854x480 and 1280x720, --temporal flow and off, default x264 preset.
# memory: the 480p clip looped to 1 minute and to 10 minutes (stream copy), --temporal flow.
set -euo pipefail
bin="$(realpath "${1:?path to the colorize binary}")"
what="${2:-all}"
photo="$(realpath "$(dirname "$0")/../../shared/data/val/kodak/kodim05.png")"
work="${VIDEO_BENCH_DIR:-/tmp/colorize-video-bench}"
mkdir -p "$work"
cd "$work"
for s in 854x480 1280x720; do
  [ -f "clip-$s.mp4" ] && continue
  ffmpeg -nostdin -v error -y -loop 1 -framerate 30000/1001 -i "$photo" -f lavfi -i sine=frequency=440 \
    -filter_complex "[0:v]zoompan=z='1.3+0.001*on':x='iw/4+on':y='ih/6+on/3':d=1:s=$s:fps=30000/1001,format=gray[v]" \
    -map "[v]" -map 1:a -t 20 -c:v libx264 -crf 20 -pix_fmt yuv420p -c:a aac "clip-$s.mp4"
done
[ -f clip-1min.mp4 ] || ffmpeg -nostdin -v error -y -stream_loop 2 -i clip-854x480.mp4 -c copy clip-1min.mp4
[ -f clip-10min.mp4 ] || ffmpeg -nostdin -v error -y -stream_loop 29 -i clip-854x480.mp4 -c copy clip-10min.mp4
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads; $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
run() {
  /usr/bin/time -f "  wall %e s, peak RSS %M KiB, CPU %P" "$bin" video "$@" --out "$work/out.mp4" --overwrite 2>&1 | tail -2
}
if [ "$what" = fps ] || [ "$what" = all ]; then
  for s in 854x480 1280x720; do
    for t in flow off; do
      echo "$s --temporal $t:"; run "clip-$s.mp4" --temporal "$t"
    done
  done
  echo "854x480 --temporal flow --keyframe-interval 3:"; run clip-854x480.mp4 --keyframe-interval 3
fi
if [ "$what" = memory ] || [ "$what" = all ]; then
  for c in clip-1min.mp4 clip-10min.mp4; do
    echo "$c --temporal flow:"; run "$c"
  done
fi
