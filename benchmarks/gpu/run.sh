#!/usr/bin/env bash
# The GPU capacity runbook, on the lent GPU machine (device tool), from the repo root, after
# benchmarks/gpu/prepare.sh and benchmarks/gpu/preflight.sh here (the preflight runs this script on
# the CPU with the packed site and fails on any missing import). Each part fits one device call
# (10 min). THE ANSWER FIRST, in one call (benchmarks/gpu/capacity.py; exit 1 on a cut warm-up or any
# cold shape, graph miss or capture failure, each said in a FAILED: line; $OUT/capacity.json,
# capacity.log, results.tgz rewritten after every step):
#   run(command="bash benchmarks/gpu/run.sh capacity", carry=[".gpu"], timeout_s=590)
# its plan (benchmarks/gpu/capacity_plan.py PHASES; a phase that ends early gives its time to the
# next ramp, none runs past 550 s; run.sh's set-up before it about 12 s):
#       0- 30 s  checkpoint    the full-size random checkpoint built on the GPU (skipped when it exists)
#      30-220 s  serve_graphs  serve with the defaults (CUDA graphs) up to its ready file: load + warm-up
#     220-265 s  one_stream    one 30 s stream: its p50 / p95 alone on the server (about 39 s)
#     265-385 s  ramp_graphs   steps of N streams, 28 s each: 6 s start, 4 s stagger, 15 s, 3 s drain (+ what earlier phases left)
#     385-395 s  stop_graphs   SIGTERM, then wait
#     395-480 s  serve_eager   serve with every graph off (stage_graphs, decode_graphs): load + warm-up
#     480-540 s  ramp_eager    one or two steps from the graphs' answer (+ what earlier phases left)
#     540-550 s  stop_eager    SIGTERM, then wait
# capacity's env: RAMP_BATCH (--max-batch-size, default 32), WORKERS (4), WARMUP_MAX_S (130: the graphs
# server's warm-up budget, inside serve_graphs' 190 s, which also holds the load and the start after
# the warm-up, about 41 s on the H200), WARMUP_MAX_S_EAGER (25), RAMP_START (128), RAMP_MAX (2048),
# CLIP_S (15: a ramp stream's audio), ONE_S (30), SLO_MS (1000), BUDGET (550), CAPACITY_ARGS (more
# benchmarks/gpu/capacity.py options, e.g. --skip-eager). A cut warm-up is FAILED (the figures after it
# are kept, marked). On the H200 (2026-11-30, docs/performance.md) no warm-up plan of batch 8 or more
# runs whole within a call: at 64, 210 batches and 361 of its stage calls took 160 s; at 16, 164
# batches and 157 stage calls 100 s; its t2u and vocoder captures are what the next change must cut.
# The other parts, back to back so the machine stays warm and keeps /tmp/full-random:
#   run(command="bash benchmarks/gpu/run.sh loadgen", carry=[".gpu"], timeout_s=600)
#   run(command="bash benchmarks/gpu/run.sh profile", carry=[".gpu"], timeout_s=600)
# or the stages' profile, the agreement and in-process on/off before a shorter ramp (deadline-aware;
# RESERVE, default 60 + WARMUP_MAX_S + 150 s, is kept for serve and its ramp: the steps before it
# get what is left above it; every result so far is packed into $OUT/results.tgz after each step):
#   run(command="BUDGET=520 bash benchmarks/gpu/run.sh session", carry=[".gpu"], timeout_s=560)
#   run(command="bash benchmarks/gpu/run.sh coldwarm", carry=[".gpu"], timeout_s=480)  (cold vs warm shapes)
# The server's warm-up (engine/warmup.py, model.warmup): WARMUP=auto|one|batches|buckets (default auto: buckets on CUDA) for
# session's servers, WARMUP_MAX_S its time budget (session 120, coldwarm 60 a size), WARMUP_MAX_BATCH the largest batch
# coldwarm's warm-up plans (default 32); coldwarm times the same cold batches after each of
# COLDWARM_MODES (default "one batches warm": today's single warm-up batch, the warm-up of every
# batch size, and the batches themselves run once before), one model per mode, same machine;
# "buckets" (an experiment): input frames and vocoder lengths padded to buckets (model/stages/shapes.py,
# --pad-frames) and the warm-up run at one length per frame bucket; "bucketswarm": its warm column;
# "stages" (issue 70): every stage on buckets (--pad-frames: encoder frames, t2u rows/text/characters/
# units, vocoder units/frames) and the warm-up of every bucket at the size profiled (--warmup
# buckets), then the same cold batches; the JSON's cold_shapes counts shapes still met first (should
# be {}); "stageswarm": its warm column. Cold vs warm for all four stages in one call:
#   run(command="SIZES=8,32 COLDWARM_MODES='stages stageswarm cold warm' bash benchmarks/gpu/run.sh coldwarm", ...)
# SKIP_ONOFF=1 leaves session's in-process batching on/off step out; SKIP_AGREEMENT=1 its agreement
# step (benchmarks/tools/agreement.py: the fast runner's tokens in $DTYPE against float32, issue 70). The ramp's server runs the
# defaults on CUDA (the fast runner, the steps core, the finish stage on its own thread and stream);
# CORE=batch, RUNNER=exact or FINISH_THREAD=false ramps the others.
# session's profile and coldwarm time the fast runner (CUDA graphs); PROFILE_RUNNER=exact: generate.
# tests: tests/gpu, the tests that need CUDA (run(command="bash benchmarks/gpu/run.sh tests", carry=[".gpu"]));
# its exit status is pytest's.
# imports: the server's and every tool's imports from the packed site (benchmarks/gpu/imports.py);
# benchmarks/gpu/preflight.sh runs it, tests and a small session HERE on the CPU with Python 3.12
# before a device call (issue 88), as this script sets the site up: run that first.
# session: model built on the GPU; stages per batch size (CUDA-synchronised, peak memory); batching
# on vs off at 64 in-process streams; then one `serve --workers W` and a ramp of loadgen --target
# runs (N doubles while p95 <= SLO_MS and none falls behind, then one step between); GPU memory and
# utilisation sampled each second throughout.
# loadgen: 100 real-time streams (+ saturation), batching on, then the same with batching off, as
# two invocations (each writes its JSON; the off run's saturation is the slow part).
# profile: ms per stage and batch size, vocoder batched vs per row.
# Results land in $OUT (the device tool brings them back). Env overrides: STREAMS, MAX_BATCH,
# MODEL, DEVICE, DTYPE, SIZES, LOADGEN_ARGS (more loadgen options), SITE ("" to use the current environment), PY. A CPU dry run of the script itself (tiny model, fast):
#   SITE= PY=.venv/bin/python MODEL=model_cache/test-model DEVICE=cpu DTYPE=float32 STREAMS=2 \
#     LOADGEN_ARGS="--speed 20" SIZES=1,2 OUT=/tmp/gpu-dry bash benchmarks/gpu/run.sh loadgen
set -uo pipefail
part=${1:?usage: run.sh capacity|session|tests|loadgen|profile|coldwarm|imports}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
STREAMS=${STREAMS:-100} MAX_BATCH=${MAX_BATCH:-64} MODEL=${MODEL:-/tmp/full-random}
DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bfloat16} SITE=${SITE-/tmp/site312}
PY=${PY:-python3}
FILES=.gpu/audio/silero_test.wav,.gpu/audio/jfk.flac
FORCED=(--forced-tokens-per-s 4 --forced-units-per-s 50)
export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-200}
# the speech watermark (model.watermark) needs resemble-perth's 37 MB of weights, which the packed
# site leaves out (the carry is 64 MiB a call): the runbook's servers run unmarked unless WATERMARK
# names the mark and the weights are carried (docs/deploy.md, "Marked speech")
export TRANSLATE_SVC_MODEL__WATERMARK=${WATERMARK:-off}
if [ -n "$SITE" ]; then  # prepare.sh's packed site; "" for the current environment (a CPU dry run)
  tar xJf .gpu/site.tar.xz -C /tmp || exit 1
  export PYTHONPATH="/tmp/site312:$PWD:$PWD/clients/python/src"
  if ! /sbin/ldconfig -p | grep -q libopus.so.0; then  # the image has no libopus (as root there)
    cp .gpu/libopus.so.0 /usr/lib/x86_64-linux-gnu/ && /sbin/ldconfig
  fi
else
  export PYTHONPATH="$PWD:$PWD/clients/python/src"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"; } > "$OUT/machine.txt" 2>&1
if [ "$part" = capacity ]; then  # straight to the ramp, every phase within its budget (capacity_plan.py)
  exec "$PY" -m benchmarks.gpu.capacity --out "$OUT" --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" \
    --files "$FILES" --py "$PY" --budget "${BUDGET:-550}" --max-batch "${RAMP_BATCH:-32}" --workers "${WORKERS:-4}" \
    --warmup "${WARMUP:-auto}" --warmup-max-s "${WARMUP_MAX_S:-130}" --warmup-max-s-eager "${WARMUP_MAX_S_EAGER:-25}" \
    --slo-ms "${SLO_MS:-1000}" --stream-s "${CLIP_S:-15}" --one-s "${ONE_S:-30}" --ramp-start "${RAMP_START:-128}" \
    --ramp-max "${RAMP_MAX:-2048}" ${CAPACITY_ARGS:-}
fi
if [ "$part" = session ]; then
  T0=$SECONDS BUDGET=${BUDGET:-520} RES=/tmp/res
  rm -rf "$RES" && mkdir -p "$RES"
  left() { echo $((BUDGET - (SECONDS - T0))); }
  pack() { cp "$OUT/machine.txt" "$RES/" 2>/dev/null; tar czf "$OUT/results.tgz" -C "$RES" . ; }
  log() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$RES/session.log"; }
  { command -v nvidia-smi >/dev/null && exec nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu \
      --format=csv,noheader -l 1; } > "$RES/gpu_samples.csv" 2>/dev/null &
  SMI=$!
  if [ ! -f "$MODEL/config.json" ]; then  # random init on the device: seconds, not minutes of CPU
    log "building $MODEL on $DEVICE"
    timeout 240 "$PY" -c "import sys, torch; torch.set_default_device(sys.argv[2])
from translate_svc.model.testing.checkpoint import build_test_checkpoint
build_test_checkpoint(sys.argv[1], full_size=sys.argv[3] == 'full')" "$MODEL" "$DEVICE" "${SIZE:-full}" > "$RES/build.txt" 2>&1 \
      || { log "device build failed, on the CPU"; rm -rf "$MODEL"
           timeout 300 "$PY" -m translate_svc.cli make-test-model --full-size "$MODEL" >> "$RES/build.txt" 2>&1; }
    log "built: $(du -sh "$MODEL" | cut -f1)"
  fi
  common=(--model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" "${FORCED[@]}" --files "$FILES")
  # the server's own defaults (issue 88: buckets, every stage's graphs, the warm-up "buckets" on CUDA)
  SLO_MS=${SLO_MS:-1000} CLIP_S=${CLIP_S:-20} WARMUP=${WARMUP:-auto} WARMUP_MAX_S=${WARMUP_MAX_S:-120}
  # the ramp's reserve: serve's load (60 s) and warm-up, then the ramp (150 s); the steps before it
  # get only what is left above it, and are skipped (logged) below 20 s
  RESERVE=${RESERVE:-$((60 + WARMUP_MAX_S + 150))}
  cap() { local c=$(( $(left) - RESERVE )); echo $(( c < $1 ? c : $1 )); }
  fits() { [ "$(cap "$1")" -ge 20 ] || { log "$2 skipped: $(left) s left, $RESERVE s kept for serve and the ramp"; false; }; }
  log "server warm-up: $WARMUP (budget $WARMUP_MAX_S s); $RESERVE s kept for serve and the ramp"
  if [ -z "${SKIP_PROFILE:-}" ] && fits 130 profile; then log "profile (batched vocoder)"
  timeout "$(cap 130)" "$PY" -m benchmarks.tools.profile_stages "${common[@]}" \
    --sizes "${SIZES:-1,8,32,64,128}" --streams 32 --max-batches "${PROFILE_BATCHES:-6}" --vocoder batched \
    --runner "${PROFILE_RUNNER:-fast}" \
    --json "$RES/profile.json" > "$RES/profile.txt" 2>&1
  log "profile: exit $?"; tail -14 "$RES/profile.txt"; pack; fi
  if [ -z "${SKIP_AGREEMENT:-}" ] && fits 110 agreement; then log "agreement: the fast runner in $DTYPE against float32, tokens"
  timeout "$(cap 110)" "$PY" -m benchmarks.tools.agreement --model "$MODEL" \
    --device "$DEVICE" --dtype "$DTYPE" --files "$FILES" --no-speech --json "$RES/agreement.json" \
    > "$RES/agreement.txt" 2>&1
  log "agreement: exit $?"; grep -E "^tokens" "$RES/agreement.txt"; pack; fi
  if [ -z "${SKIP_ONOFF:-}" ] && fits 170 "loadgen on,off"; then log "loadgen on,off at ${ONOFF_STREAMS:-64} streams, in-process"
  TRANSLATE_SVC_MODEL__WARMUP_MAX_S=$WARMUP_MAX_S timeout "$(cap 170)" \
    "$PY" -m benchmarks.tools.loadgen "${common[@]}" --warmup "$WARMUP" \
    --streams "${ONOFF_STREAMS:-64}" --max-batch-size "$MAX_BATCH" --configs on,off --stream-s "$CLIP_S" \
    --no-saturation --slo-ms "$SLO_MS" --json "$RES/loadgen_onoff.json" > "$RES/loadgen_onoff.txt" 2>&1
  log "loadgen on,off: exit $?"; grep -E "^│" "$RES/loadgen_onoff.txt" | tail -30; pack; fi
  # serve LABEL [ENV=VALUE ...]: `serve --workers W` with the settings given, until its ready file
  serve() {
    label=$1; shift; rm -f /tmp/ready.json
    env "$@" TRANSLATE_SVC_MODEL__FORCED_TEXT_TOKENS_PER_S=4 TRANSLATE_SVC_MODEL__FORCED_UNITS_PER_S=50 \
      TRANSLATE_SVC_MODEL__WARMUP_MAX_S=$WARMUP_MAX_S \
      TRANSLATE_SVC_LIMITS__MAX_STREAMS=4096 TRANSLATE_SVC_ENGINE__MAX_QUEUED_SEGMENTS=8192 \
      TRANSLATE_SVC_ENGINE__CORE=${CORE:-auto} TRANSLATE_SVC_MODEL__RUNNER=${RUNNER:-auto} \
      "$PY" -m translate_svc.cli serve --model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" --port 0 \
      --max-batch-size "${RAMP_BATCH:-128}" --workers "${WORKERS:-4}" --ready-file /tmp/ready.json \
      --log-level WARNING > "$RES/serve_$label.txt" 2>&1 &
    SERVE=$! T_SERVE=$SECONDS port=
    for _ in $(seq 1 $(( 2 * (120 + WARMUP_MAX_S) ))); do  # loading, then the warm-up (its budget)
      [ -s /tmp/ready.json ] && break; kill -0 $SERVE 2>/dev/null || break; sleep 0.5; done
    if [ -s /tmp/ready.json ]; then
      port=$("$PY" -c "import json; print(json.load(open('/tmp/ready.json'))['port'])")
      log "$label: serving on $port, ready $((SECONDS - T_SERVE)) s after start"
    else
      log "$label: serve did not become ready"; tail -30 "$RES/serve_$label.txt"
    fi
  }
  # run LABEL N [SECONDS]: N real-time streams against the server; prints how many it sustained
  run() {
    timeout $(( $(left) - 5 )) "$PY" -m benchmarks.tools.loadgen --target "127.0.0.1:$port" --streams "$2" \
      --files "$FILES" --stream-s "${3:-$CLIP_S}" --stagger-s 5 --no-saturation --slo-ms "$SLO_MS" \
      --json "$RES/ramp_$1_$2.json" > "$RES/ramp_$1_$2.txt" 2>&1
    "$PY" -c "import json, sys
rt = json.load(open(sys.argv[1]))['results']['target']['realtime']
lat = rt['latency_ms']
print(sys.argv[2], rt['streams_sustained'], 'p50', round(lat['p50']), 'p95', round(lat['p95']), 'segments', rt['segments'],
      'behind', rt['streams_behind'], 'failed', rt['streams_failed'], 'send_lag', round(rt['max_send_lag_ms']), file=sys.stderr)
print(rt['streams_sustained'])" "$RES/ramp_$1_$2.json" "$1" 2>>"$RES/session.log" || echo 0
  }
  stop() { [ -n "${SERVE:-}" ] && kill -TERM $SERVE 2>/dev/null && wait $SERVE; SERVE=; }
  log "serve --workers ${WORKERS:-4}: the defaults (warm-up $WARMUP)"
  serve new TRANSLATE_SVC_MODEL__WARMUP=$WARMUP TRANSLATE_SVC_MODEL__FINISH_THREAD=${FINISH_THREAD:-true}
  good=0 bad=0
  if [ -n "$port" ]; then
    ok=$(run new 1 "${ONE_S:-30}"); log "one stream, ${ONE_S:-30} s: sustained=$ok"; tail -1 "$RES/session.log"; pack
    n=${RAMP_START:-64}
    while [ "$(left)" -gt "${RAMP_LEFT:-150}" ] && [ "$n" -le "${RAMP_MAX:-1000000}" ]; do  # RAMP_MAX: the preflight's one step
      ok=$(run new "$n"); log "ramp $n streams: sustained=$ok"; tail -1 "$RES/session.log"; pack
      if [ "${ok:-0}" -gt 0 ]; then good=$n; else bad=$n; fi
      if [ "$bad" = 0 ]; then n=$((n * 2)); elif [ $(( (bad - good) )) -gt $(( good / 4 + 16 )) ]; then n=$(( (good + bad) / 2 )); else break; fi
    done
    log "ramp: largest sustained $good, first not sustained $bad"
  fi
  stop
  # the same at one stream and the largest N with the settings before issue 88: no buckets, only the
  # decode step under graphs, the warm-up of every batch size
  if [ -z "${SKIP_OLD:-}" ] && [ "$(left)" -gt 120 ]; then
    log "serve with the old settings (buckets off, stage graphs off, warm-up batches)"
    serve old TRANSLATE_SVC_MODEL__BUCKETS=false TRANSLATE_SVC_MODEL__STAGE_GRAPHS=false \
      TRANSLATE_SVC_MODEL__WARMUP=batches TRANSLATE_SVC_MODEL__FINISH_THREAD=${FINISH_THREAD:-true}
    if [ -n "$port" ]; then
      ok=$(run old 1 "${ONE_S:-30}"); log "old settings, one stream: sustained=$ok"; tail -1 "$RES/session.log"; pack
      if [ "$good" -gt 0 ] && [ "$(left)" -gt 60 ]; then
        ok=$(run old "$good"); log "old settings, $good streams: sustained=$ok"; tail -1 "$RES/session.log"; pack
      fi
    fi
    stop
  fi
  kill $SMI 2>/dev/null
  sort -t, -k2 -n "$RES/gpu_samples.csv" 2>/dev/null | tail -1 | sed 's/^/peak memory sample: /' | tee -a "$RES/session.log"
  pack; log "done"
  exit 0
fi
if [ "$part" = imports ]; then "$PY" benchmarks/gpu/imports.py; exit $?; fi
if [ "$part" != tests ] && [ ! -f "$MODEL/config.json" ]; then  # tests build their own small checkpoint
  echo "building $MODEL on $DEVICE"  # random init on the device, as session does; the CPU if that fails
  timeout 240 "$PY" -c "import sys, torch; torch.set_default_device(sys.argv[2])
from translate_svc.model.testing.checkpoint import build_test_checkpoint
build_test_checkpoint(sys.argv[1], full_size=sys.argv[3] == 'full')" "$MODEL" "$DEVICE" "${SIZE:-full}" > "$OUT/build.txt" 2>&1 \
    || { rm -rf "$MODEL"; "$PY" -m translate_svc.cli make-test-model --full-size "$MODEL" >> "$OUT/build.txt" 2>&1; } \
    || { cat "$OUT/build.txt"; exit 1; }
fi
common=(--model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" "${FORCED[@]}" --files "$FILES")
case "$part" in
  tests)  # tests/gpu (the gpu marker; skipped without CUDA): the exact runner, the graphs, the running
    # decode and the flood's fair share on the device (issues 69, 70); the audio is prepare.sh's copy.
    # The packed pytest and its two plugins only: the image's own plugins were made for its pytest
    TRANSLATE_SVC_SHARED_AUDIO="$PWD/.gpu/audio" PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 timeout "${TESTS_TIMEOUT:-420}" \
      "$PY" -m pytest -q -p no:cacheprovider -p pytest_asyncio.plugin -p pytest_timeout -m gpu tests/gpu -rs \
      > "$OUT/tests_gpu.txt" 2>&1
    rc=$?
    echo "tests/gpu: exit $rc"
    tail -15 "$OUT/tests_gpu.txt"
    exit $rc
    ;;
  loadgen)
    for cfg in on off; do
      timeout "${LOADGEN_TIMEOUT:-250}" "$PY" -m benchmarks.tools.loadgen "${common[@]}" --streams "$STREAMS" \
        --max-batch-size "$MAX_BATCH" --configs "$cfg" ${LOADGEN_ARGS:-} --json "$OUT/loadgen_$cfg.json" > "$OUT/loadgen_$cfg.txt" 2>&1
      echo "loadgen $cfg: exit $?"
      grep -E "^│" "$OUT/loadgen_$cfg.txt" | tail -40
    done
    ;;
  profile)
    for voc in batched rows; do
      timeout "${PROFILE_TIMEOUT:-240}" "$PY" -m benchmarks.tools.profile_stages "${common[@]}" --sizes "${SIZES:-1,8,32,64}" \
        --vocoder "$voc" > "$OUT/profile_$voc.txt" 2>&1
      echo "profile $voc: exit $?"
      tail -12 "$OUT/profile_$voc.txt"
    done
    ;;
  coldwarm)  # new shapes against shapes run once before, same batches (2026-11-25: 39.1 vs 11.5 ms at 32)
    # cold: an unrelated 20 s clip first (the 2026-11-25 column); one / batches: the server's warm-up
    # (engine/warmup.py) first, then the same cold batches; warm: those batches run once before
    WARMUP_MAX_S=${WARMUP_MAX_S:-60}  # per batch size profiled (one model each)
    for mode in ${COLDWARM_MODES:-one batches warm}; do
      case "$mode" in
        cold|warm) how=(--"$mode"); limit=${PROFILE_TIMEOUT:-55} ;;
        one|batches|buckets) how=(--cold --warmup "${mode/buckets/batches}" --warmup-max-batch "${WARMUP_MAX_BATCH:-32}"
            --warmup-max-s "$WARMUP_MAX_S")
          [ "$mode" = buckets ] && how+=(--pad-frames --warmup-lengths buckets)
          limit=${PROFILE_TIMEOUT:-55}; [ "$mode" != one ] && limit=$((limit + 2 * WARMUP_MAX_S + 30)) ;;
        bucketswarm|stageswarm) how=(--warm --pad-frames); limit=${PROFILE_TIMEOUT:-55} ;;
        stages) how=(--cold --warmup buckets --pad-frames); limit=$((${PROFILE_TIMEOUT:-55} + 2 * WARMUP_MAX_S + 30)) ;;
        *) echo "unknown coldwarm mode $mode (cold, one, batches, buckets, warm, bucketswarm, stages, stageswarm)" >&2
           exit 2 ;;
      esac
      timeout "$limit" "$PY" -m benchmarks.tools.profile_stages "${common[@]}" --streams 32 \
        --vocoder batched --sizes "${SIZES:-1,32}" --max-batches 4 --runner "${PROFILE_RUNNER:-fast}" "${how[@]}" \
        --json "$OUT/profile_$mode.json" \
        > "$OUT/profile_$mode.txt" 2>&1
      echo "$mode: exit $?"; grep -E "^│|warm-up" "$OUT/profile_$mode.txt"
      "$PY" -c "import json, sys
for r in json.load(open(sys.argv[1]))['results']:
    print('  batch', r['batch_size'], 'ms/segment', round(r['ms_per_segment'], 1), 'cold shapes', r.get('cold_shapes'))" \
        "$OUT/profile_$mode.json" 2>/dev/null
    done
    ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
