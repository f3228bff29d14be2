#!/usr/bin/env bash
# `make test` from a fresh clone while four busy loops take the cores (issue 101's bar: two runs in a
# row, each within 60 minutes): bash benchmarks/loaded/make_test.sh DIR LOG [COMMIT]
# DIR: where to clone (removed first; beside this checkout, so that ../shared is the shared audio); LOG: appended with the run's output and its START/END lines
# (rc and seconds); COMMIT: what to check out (default: this checkout's HEAD). The loops stop with
# the run. Give the machine nothing else to do: a run beside other work measures that work too.
set -u
dir=${1:?usage: make_test.sh DIR LOG [COMMIT]}; log=${2:?usage: make_test.sh DIR LOG [COMMIT]}
repo=$(git -C "$(dirname "$0")/../.." rev-parse --show-toplevel)
commit=${3:-$(git -C "$repo" rev-parse HEAD)}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
rm -rf "$dir" && git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit" || exit 9
for _ in 1 2 3 4; do ( while :; do :; done ) & pids+=($!); done
start=$(date +%s)
echo "START $(date -u +%FT%TZ) $commit" >> "$log"
( cd "$dir" && CI=true make test ) >> "$log" 2>&1
rc=$?
echo "END rc=$rc $(( $(date +%s) - start ))s $(date -u +%FT%TZ) $commit" >> "$log"
exit $rc
