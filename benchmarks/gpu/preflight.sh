#!/usr/bin/env bash
# The GPU runbook's CPU preflight (issue 88): run HERE, after benchmarks/gpu/prepare.sh, before a
# device call. It runs run.sh itself on this CPU with Python 3.12 in a venv that holds only packages
# the device image has (image-packages.txt beside this file, at the image's versions where known),
# the packed site unpacked and put first on PYTHONPATH by run.sh exactly as on the device, and fails
# on any missing import:
#   1. the carry's size: .gpu/ plus the working tree that travels, under the 64 MiB a call carries;
#   2. imports: the server (translate_svc.cli, .app), every tool run.sh runs, librnnoise found and
#      loaded as audio/denoise.py does;
#   3. run.sh tests: tests/gpu collected by the packed pytest (each test skips without CUDA);
#   4. run.sh session, small: profile_stages, agreement, in-process loadgen on,off, then a real
#      `translate-svc serve --workers 2` up to its ready file and one ramp step of one short loadgen
#      stream against it, then SIGTERM; every step must exit 0, the stream fail none;
#   5. run.sh capacity, small (every phase's budget x3: the warm-ups run on this CPU): serve with the
#      warm-up `buckets` at batch 1, verified from /metrics (whole, no cold shape, no graph miss, no
#      capture failure), one stream, a ramp of 1 and 2 streams from loadgen processes, then the
#      server with every graph off and its ramp; it must exit 0 (every verdict clean).
# The test checkpoint (MODEL), when missing, is built after step 2 has unpacked the site, with the
# site first on PYTHONPATH as run.sh sets it (the venv holds only the image's packages: no pydantic).
# Usage: bash benchmarks/gpu/preflight.sh   (about 5 minutes). The first run builds the venv
# (a CUDA torch from PyPI, a few GB, minutes); later runs reuse it (PREFLIGHT_VENV, default below).
# Env: PREFLIGHT_VENV, PY312 (a Python 3.12), TORCH (default 2.11.0, the image's), MODEL (a test
# checkpoint; default model_cache/test-model, made if missing), KEEP=1 keeps the work folder,
# SKIP_PROFILE=1 leaves profile_stages out of step 4 (its imports stay in step 2), SKIP_CAPACITY=1
# leaves step 5 out.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
VENV=${PREFLIGHT_VENV:-/tmp/translate-svc-gpu-preflight}
TORCH=${TORCH:-2.11.0}
MODEL=${MODEL:-$REPO/model_cache/test-model}
LIMIT=$((64 * 1024 * 1024))
fail() { echo "preflight FAILED: $*" >&2; exit 1; }
step() { echo "== $*"; }
[ -f .gpu/site.tar.xz ] || fail ".gpu/site.tar.xz is missing: run benchmarks/gpu/prepare.sh first"

step "1. the carry: .gpu/ and the working tree that travels with it"
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
  | awk '{s += $1} END {print s + 0}')
gpu=$(du -sb .gpu | cut -f1)
printf '   working tree %d B, .gpu %d B (site.tar.xz %d B), together %d B of %d (%d%%)\n' "$tree" "$gpu" \
  "$(stat -c %s .gpu/site.tar.xz)" $((tree + gpu)) "$LIMIT" $(((tree + gpu) * 100 / LIMIT))
[ $((tree + gpu)) -lt "$LIMIT" ] || fail "the carry is over 64 MiB: the device tool refuses the call"

if [ -z "${PY312:-}" ]; then
  for c in python3.12 "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12"; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PY312=$c; break; fi
  done
fi
[ -n "${PY312:-}" ] || fail "no Python 3.12 found (the device's is 3.12.3): set PY312"
want="$TORCH $(cat benchmarks/gpu/image-packages.txt benchmarks/gpu/preflight-requirements.txt | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.preflight" 2>/dev/null)" != "$want" ]; then
  step "   building the venv $VENV (the image's packages only; minutes, once)"
  rm -rf "$VENV"
  "$PY312" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  # torch with what it needs (all in the image), then the image's packages the server or its
  # dependencies import, without theirs: a package the image lacks must come from the packed site
  "${pip[@]}" "torch==$TORCH"
  "${pip[@]}" --no-deps -r benchmarks/gpu/preflight-requirements.txt
  extra=$("$VENV/bin/python" -m pip list --format freeze --disable-pip-version-check 2>/dev/null \
    | cut -d= -f1 | tr 'A-Z_.' 'a-z--' | grep -vxF -f <(grep -v '^#' benchmarks/gpu/image-packages.txt | tr 'A-Z_.' 'a-z--') \
    | grep -vxE "pip|nvidia-.*|cuda-.*" || true)
  [ -z "$extra" ] || fail "the venv holds packages the image lacks: $extra"
  echo "$want" > "$VENV/.preflight"
fi
PY=$VENV/bin/python
"$PY" -c 'import sys, torch; print("   python", sys.version.split()[0], "torch", torch.__version__)'

work=$(mktemp -d /tmp/gpu-preflight.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
export SITE=/tmp/site312 PY MODEL DEVICE=cpu DTYPE=float32

step "2. imports from the packed site, as run.sh sets them up"
# run.sh's own set-up (it unpacks .gpu/site.tar.xz into /tmp and sets PYTHONPATH), then the imports
OUT=$work/imports bash benchmarks/gpu/run.sh imports || fail "an import is missing (above)"
if [ ! -f "$MODEL/config.json" ]; then  # after the site is unpacked: the venv has no pydantic
  step "   building the test checkpoint $MODEL (the packed site first, as run.sh sets it)"
  PYTHONPATH="$SITE:$REPO:$REPO/clients/python/src" "$PY" -m translate_svc.cli make-test-model "$MODEL" \
    > "$work/make-test-model.txt" 2>&1 || { tail -20 "$work/make-test-model.txt"; fail "make-test-model $MODEL"; }
fi

step "3. run.sh tests: tests/gpu collected by the packed pytest"
OUT=$work/tests bash benchmarks/gpu/run.sh tests || { tail -30 "$work/tests/tests_gpu.txt"; fail "tests/gpu"; }

step "4. run.sh session, small: profile, agreement, loadgen on,off, then serve and one stream"
OUT=$work/session BUDGET=500 SIZES=1,2 PROFILE_BATCHES=1 ONOFF_STREAMS=2 CLIP_S=6 ONE_S=6 WARMUP=one \
  WARMUP_MAX_S=20 WORKERS=2 RAMP_BATCH=8 RAMP_START=1 RAMP_MAX=1 SLO_MS=60000 \
  bash benchmarks/gpu/run.sh session || fail "run.sh session exited $?"
res=/tmp/res
want=("agreement: exit 0" "loadgen on,off: exit 0" "new: serving on" "old: serving on")
[ -n "${SKIP_PROFILE:-}" ] || want=("profile: exit 0" "${want[@]}")  # SKIP_PROFILE=1 leaves it out
for s in "${want[@]}"; do
  if ! grep -q "$s" "$res/session.log"; then
    tail -n 25 "$res"/*.txt || true
    fail "run.sh session: no '$s' in $res/session.log (the step's output above)"
  fi
done
for label in new old; do  # the defaults' server, then the old settings' (buckets and stage graphs off)
  "$PY" - "$res/ramp_${label}_1.json" <<'EOF' || { tail -40 "$res/serve_$label.txt"; fail "the stream against serve ($label)"; }
import json, sys
rt = json.load(open(sys.argv[1]))["results"]["target"]["realtime"]
print("   serve: segments", rt["segments"], "failed", rt["streams_failed"], "p95 ms", round(rt["latency_ms"]["p95"]))
sys.exit(0 if rt["segments"] > 0 and rt["streams_failed"] == 0 else 1)
EOF
  if grep -n "Traceback" "$res/serve_$label.txt"; then fail "serve logged a traceback ($res/serve_$label.txt)"; fi
done

if [ -z "${SKIP_CAPACITY:-}" ]; then
  step "5. run.sh capacity, small: warm-up verified, one stream, a ramp of 1 and 2, then every graph off"
  # the warm-up of every bucket up to 6.5 s (the streams' 6 s clips cut no longer segment), at batch 1;
  # a 60 s SLO as step 4's: this busy CPU's latency is not what the preflight checks
  TRANSLATE_SVC_MODEL__WARMUP_LONGEST_S=6.5 OUT=$work/capacity WARMUP=buckets RAMP_BATCH=1 WORKERS=2 \
    RAMP_START=1 RAMP_MAX=2 CLIP_S=6 ONE_S=6 WARMUP_MAX_S=200 WARMUP_MAX_S_EAGER=100 SLO_MS=60000 CAPACITY_ARGS="--scale 3" \
    bash benchmarks/gpu/run.sh capacity || { rc=$?; tail -40 "$work/capacity/capacity.log"; fail "run.sh capacity exited $rc"; }
  "$PY" - "$work/capacity/capacity.json" <<'EOF' || fail "run.sh capacity's answer (above)"
import json, sys
doc = json.load(open(sys.argv[1]))
for label in ("graphs", "eager"):
    w = doc["servers"][label]["warmup"]
    print(f"   {label}: warm-up {w['translate_svc_warmup_batches']:g} of {w['translate_svc_warmup_planned_batches']:g}"
          f" batches, {w['translate_svc_warmup_stage_calls']:g} stage calls, {w['translate_svc_warmup_seconds']:.1f} s;"
          f" sustained {doc['answer'][label]['sustained']}")
one = doc["answer"]["one_stream"]
print(f"   one stream: p50 {one['p50_ms']:.0f} ms, p95 {one['p95_ms']:.0f} ms; failures {doc['failures']}")
sys.exit(0 if not doc["failures"] and all(doc["answer"][k]["sustained"] >= 1 for k in ("graphs", "eager")) else 1)
EOF
fi
echo "preflight passed: the packed site starts the server and runs run.sh's tools and capacity on Python 3.12"
