#!/usr/bin/env bash
# Run HERE (PyPI and ../shared are reachable) before a GPU run: stages in .gpu/ (git-ignored)
#   .gpu/site.tar.xz   every package the server, loadgen and profile_stages import that the device
#                      image lacks (or has at another version), unpacked for its Python 3.12 and
#                      packed with xz: the wheels alone (PyAV's FFmpeg is 35 MB) pass the device's
#                      64 MiB carry limit, the packed site does not (47 MB)
#   .gpu/libopus.so.0  the system libopus the live Opus decoder loads (the image has none)
#   .gpu/audio/        the two speech files the load test streams (../shared does not travel)
# The image already has CUDA torch, onnxruntime, numpy, aiohttp, sentencepiece, tokenizers, safetensors,
# accelerate, huggingface_hub, typer, rich, psutil and prometheus-client (/work/.library/device/KINDS.md);
# the list below is what a run there found missing (2026-11-25), at our pins.
# Then: device run with carry [".gpu"] and command `BUDGET=520 bash benchmarks/gpu/run.sh session`.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/audio
cp ../shared/audio/silero_test.wav ../shared/audio/jfk.flac .gpu/audio/
cp -L "$(/sbin/ldconfig -p | awk '/libopus\.so\.0 .*x86-64/ {print $NF; exit}')" .gpu/libopus.so.0
PY=${PYTHON:-python3}
pkgs=(
  transformers==5.23.0 regex typing-extensions
  grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 grpcio-status==1.85.1
  protobuf==7.35.1 googleapis-common-protos
  silero-vad==6.2.3 soxr soundfile cffi pycparser
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv
  msgspec segno "av>=14" "opuslib-next>=1.3.1,<2" webvtt-py langcodes python-json-logger
  aiortc aioice pyee pylibsrtp cryptography pyopenssl google-crc32c dnspython ifaddr
  # run.sh tests: tests/conftest.py imports pytest-asyncio (the image lacks it), which needs pytest
  # >= 8.4: the pytest the tests run with here, packed, so the image's own version does not matter
  pytest==9.2.0 pluggy==1.7.0 iniconfig==2.3.1 pytest-timeout==2.4.0 pytest-asyncio==1.5.0
)
plat=()
for p in manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 \
  manylinux_2_26_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/whl"
for pkg in "${pkgs[@]}"; do
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" --platform any -d "$tmp/whl" "$pkg"
done
"$PY" -m pip download -q --no-deps --no-binary=:all: -d "$tmp" srt  # sdist only: a wheel made here
"$PY" -m pip wheel -q --no-deps -w "$tmp/whl" "$tmp"/srt-*.tar.gz
"$PY" -m pip install -q --no-deps --no-compile --target "$tmp/site312" --python-version 3.12 --implementation cp \
  --only-binary=:all: "${plat[@]}" --platform any "$tmp"/whl/*.whl
# the VAD loads data/silero_vad.onnx alone (vad/silero.py): its other model files stay behind
find "$tmp/site312/silero_vad/data" -type f ! -name silero_vad.onnx ! -name __init__.py -delete
tar cf - -C "$tmp" site312 | xz -T0 -6 > .gpu/site.tar.xz
du -sh .gpu
