#!/usr/bin/env bash
# Images/s of one `colorize batch` shard at the default render size: a local folder against a
# loopback S3 server (moto), on the same photos: val/kodak and val/bsds500 from ../shared/data
# (24 photos of 768x512 and 64 of 481x321), three copies each, 264 in all.
#
#   scripts/batch-bench.sh [COLORIZE_BINARY]
#
# Needs moto's server: `python3 -m venv v && v/bin/pip install 'moto[server]'`, then
# COLORIZE_TEST_MOTO=v/bin/python (the variable .ci/run sets).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-${CARGO_TARGET_DIR:-target}/debug/colorize}"
python="${COLORIZE_TEST_MOTO:-python3}"
work="$(mktemp -d)"
trap 'kill "${moto_pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

for copy in 1 2 3; do
  mkdir -p "$work/in/$copy/kodak" "$work/in/$copy/bsds500"
  cp ../shared/data/val/kodak/* "$work/in/$copy/kodak/"
  cp ../shared/data/val/bsds500/* "$work/in/$copy/bsds500/"
done
n=$(find "$work/in" -type f | wc -l)

rate() {
  python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings"]
print("%d images in %.1f s: %.2f images/s (stage seconds: download %.1f, decode %.1f, inference %.1f, encode %.1f, upload %.1f)" % (
    r["done"], r["elapsed_seconds"], r["images_per_second"], t["download_seconds"], t["decode_seconds"],
    t["inference_seconds"], t["encode_seconds"], t["upload_seconds"]))' "$1"
}

echo "== $n photos, $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $(date -u +%F)"
echo "== local folder -> local folder"
"$bin" batch --input "$work/in" --output "$work/out-local" --progress-every 1000
rate "$work/out-local/_colorize/reports/shard-0-of-1.json"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$python" -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
"$python" - "$work/in" <<'PY'
import boto3, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
s3.create_bucket(Bucket="bench")
root = sys.argv[1]
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        s3.upload_file(p, "bench", "in/" + os.path.relpath(p, root))
PY
echo "== s3://bench/in -> s3://bench/out (moto on 127.0.0.1)"
"$bin" batch --input s3://bench/in --output s3://bench/out --progress-every 1000
"$python" - <<'PY' > "$work/s3-report.json"
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
print(s3.get_object(Bucket="bench", Key="out/_colorize/reports/shard-0-of-1.json")["Body"].read().decode())
PY
rate "$work/s3-report.json"
