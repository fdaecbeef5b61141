#!/usr/bin/env bash
# Submits colorize as an AWS Batch array job: SHARDS children, each with its
# AWS_BATCH_JOB_ARRAY_INDEX (set by AWS Batch) as the shard index. COLORIZE_SHARD_COUNT is set
# to the array size here, so the two cannot disagree.
#
#   deploy/aws-batch/submit.sh my-queue s3://my-archive/scans s3://my-archive/colour 16
set -euo pipefail
queue=$1 input=$2 output=$3 shards=${4:-16}
aws batch register-job-definition --cli-input-json file://"$(dirname "$0")"/job-definition.json >/dev/null
aws batch submit-job \
  --job-name "colorize-$(date +%Y%m%d-%H%M%S)" \
  --job-queue "$queue" \
  --job-definition colorize-batch \
  --array-properties "size=$shards" \
  --parameters "input=$input,output=$output" \
  --container-overrides "environment=[{name=COLORIZE_SHARD_COUNT,value=$shards}]"
# When every child has ended:
#   docker run --rm -e AWS_REGION=... colorize:0.1.0 batch --summary --output "$output"
