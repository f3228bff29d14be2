#!/usr/bin/env bash
# Run HERE (PyPI and ../shared are reachable) before a GPU run: stages in .gpu/ (git-ignored)
#   .gpu/whl/    the wheels the lent GPU machine lacks, for its Python 3.12
#   .gpu/audio/  the two speech files the load test streams (../shared does not travel)
# The device image already has CUDA torch, onnxruntime, numpy, sentencepiece, tokenizers,
# safetensors, accelerate, huggingface_hub, typer, rich and prometheus-client
# (/work/.library/device/KINDS.md); these are the rest of pyproject's dependencies, at our pins.
# Then: device run with carry [".gpu"] and command `bash benchmarks/gpu/run.sh loadgen` (see run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/whl .gpu/audio
cp ../shared/audio/silero_test.wav ../shared/audio/jfk.flac .gpu/audio/
PY=${PYTHON:-python3}
pkgs=(
  transformers==5.23.0 regex typing-extensions
  grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 grpcio-status==1.85.1
  protobuf==7.35.1 googleapis-common-protos
  silero-vad==6.2.3 soxr soundfile cffi pycparser
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv
)
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
for pkg in "${pkgs[@]}"; do
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" --platform any -d .gpu/whl "$pkg" 2>.gpu/pip.log; then
    cat .gpu/pip.log >&2
    exit 1
  fi
done
rm -f .gpu/pip.log
du -sh .gpu
