#!/usr/bin/env bash
# Two builds of `resnet` side by side on one machine: each case is run by BASE and NEW in
# alternation (BASE NEW BASE NEW …, ROUNDS rounds, each a `bench --iters ITERS` whose median is
# one sample), and the median of the samples is reported per build. Alternating keeps a
# machine's drifting load (2-core CI machines, other jobs) out of the ratio.
#
#   bash bench/compare_builds.sh BASE_BIN NEW_BIN WEIGHTS_DIR [ROUNDS] [ITERS]
#
# WEIGHTS_DIR holds NAME.safetensors for each NAME below (examples/synthetic_weights writes
# them, so an older build that lacks an architecture's `--arch` runs the same network).
# Extra `bench` arguments for NEW only (e.g. `--precision f16`): NEW_ARGS="…".
set -euo pipefail
base=$1 new=$2 dir=$3 rounds=${4:-3} iters=${5:-2}
cases=${CASES:-"resnet18:1 resnet18:8 resnet50:1 resnet50:8 resnet152:1 resnet152:8 resnext50_32x4d:1 resnext50_32x4d:8"}

sample() { # BIN WEIGHTS BATCH [ARGS…] → the median ms of one bench
  local bin=$1 w=$2 b=$3
  shift 3
  "$bin" bench --weights "$w" --batch "$b" --iters "$iters" --no-cache --json "$@" 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["ms"])'
}
median() { python3 -c 'import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 1))' "$@"; }

printf '%-22s %5s %12s %12s %7s  %s\n' case batch "base ms" "new ms" ratio "load (1 min)"
for c in $cases; do
  name=${c%%:*} batch=${c##*:}
  a=() b=()
  for _ in $(seq "$rounds"); do
    a+=("$(sample "$base" "$dir/$name.safetensors" "$batch")")
    # shellcheck disable=SC2086
    b+=("$(sample "$new" "$dir/$name.safetensors" "$batch" ${NEW_ARGS:-})")
  done
  ma=$(median "${a[@]}") mb=$(median "${b[@]}")
  printf '%-22s %5s %12s %12s %6.2fx  %s\n' "$name" "$batch" "$ma" "$mb" \
    "$(python3 -c "print($ma / $mb)")" "$(cut -d' ' -f1 /proc/loadavg)"
done
