#!/usr/bin/env bash
# The GPU capacity runbook, on the lent GPU machine (device tool), from the repo root, after
# benchmarks/gpu/prepare.sh here. Each part fits one device call (10 min); run them back to back
# so the machine stays warm and keeps /tmp/full-random:
#   run(command="bash benchmarks/gpu/run.sh loadgen", carry=[".gpu"], timeout_s=600)
#   run(command="bash benchmarks/gpu/run.sh profile", carry=[".gpu"], timeout_s=600)
# loadgen: 100 real-time streams (+ saturation), batching on, then the same with batching off, as
# two invocations (each writes its JSON; the off run's saturation is the slow part).
# profile: ms per stage and batch size, vocoder batched vs per row.
# Results land in $OUT (the device tool brings them back). Env overrides: STREAMS, MAX_BATCH,
# MODEL, DEVICE, DTYPE, SIZES, LOADGEN_ARGS (more loadgen options), SITE (where the wheels go; ""
# to use the current environment), PY. A CPU dry run of the script itself (tiny model, fast):
#   SITE= PY=.venv/bin/python MODEL=model_cache/test-model DEVICE=cpu DTYPE=float32 STREAMS=2 \
#     LOADGEN_ARGS="--speed 20" SIZES=1,2 OUT=/tmp/gpu-dry bash benchmarks/gpu/run.sh loadgen
set -uo pipefail
part=${1:?usage: run.sh loadgen|profile}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
STREAMS=${STREAMS:-100} MAX_BATCH=${MAX_BATCH:-64} MODEL=${MODEL:-/tmp/full-random}
DEVICE=${DEVICE:-cuda} DTYPE=${DTYPE:-bfloat16} SITE=${SITE-/tmp/site}
PY=${PY:-python3}
FILES=.gpu/audio/silero_test.wav,.gpu/audio/jfk.flac
FORCED=(--forced-tokens-per-s 4 --forced-units-per-s 50)
export PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-200}
if [ -n "$SITE" ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl \
    || exit 1
  export PYTHONPATH="$SITE:$PWD"
else
  export PYTHONPATH="$PWD"
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__,
  torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"; } > "$OUT/machine.txt" 2>&1
if [ ! -f "$MODEL/config.json" ]; then
  echo "building $MODEL"
  "$PY" -m translate_svc.cli make-test-model --full-size "$MODEL" > "$OUT/build.txt" 2>&1 || { cat "$OUT/build.txt"; exit 1; }
fi
common=(--model "$MODEL" --device "$DEVICE" --dtype "$DTYPE" "${FORCED[@]}" --files "$FILES")
case "$part" in
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
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
