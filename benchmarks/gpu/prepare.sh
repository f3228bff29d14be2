#!/usr/bin/env bash
# Run HERE (PyPI and ../shared are reachable) before a GPU run: stages in .gpu/ (git-ignored)
#   .gpu/site.tar.xz   every package the server, loadgen, profile_stages, agreement and tests/gpu
#                      import that the device image lacks (or has at another version), unpacked for
#                      its Python 3.12, pruned to what they import and packed with xz -9e
#   .gpu/libopus.so.0  the system libopus the live Opus decoder loads (the image has none)
#   .gpu/audio/        the two speech files the load test streams (../shared does not travel)
# A device call carries at most 64 MiB: .gpu/ AND the working tree (about 10 MB). Unpruned, the site
# packed to 47.4 MB and pyrnnoise's librnnoise (14.8 MB, 13.2 packed: its model's weights) did not
# fit beside it (issue 88). Pruned (2026-11-28): 28.4 MB, 41.6 with pyrnnoise; what goes:
#   - transformers' models but the five the service loads (auto, encoder_decoder, seamless_m4t,
#     seamless_m4t_v2 and wav2vec2 for language ID): 50 of its 59 MB unpacked;
#   - PyAV's bundled codec and device libraries the service never calls, stubbed
#     (benchmarks/gpu/stub_codecs.py: x264, x265, SVT-AV1, libvpx, dav1d, WebP, VMAF, oneVPL,
#     GnuTLS, ALSA, XCB, DRM): 73 of av.libs' 105 MB unpacked, about 9 MB packed;
#   - symbol tables of the packages' own extensions (strip; auditwheel's *.libs are left as
#     built), type stubs and C sources, the packages' tests and console scripts.
# The image already has CUDA torch, onnxruntime, numpy, aiohttp, sentencepiece, tokenizers, safetensors,
# accelerate, huggingface_hub, typer, rich, psutil and prometheus-client (/work/.library/device/KINDS.md;
# benchmarks/gpu/image-packages.txt), at the versions benchmarks/gpu/preflight-requirements.txt names.
# Then: bash benchmarks/gpu/preflight.sh (here, on the CPU, Python 3.12: fails on any missing
# import), then a device run with carry [".gpu"] and command `BUDGET=520 bash benchmarks/gpu/run.sh session`.
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .gpu && mkdir -p .gpu/audio
cp ../shared/audio/silero_test.wav ../shared/audio/jfk.flac .gpu/audio/
cp -L "$(/sbin/ldconfig -p | awk '/libopus\.so\.0 .*x86-64/ {print $NF; exit}')" .gpu/libopus.so.0
# pip for 3.12 refuses wheels whose Requires-Python excludes the interpreter it runs on (PyAV 19: >=3.12)
if [ -z "${PYTHON:-}" ]; then
  for c in python3.12 "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12"; do
    if "$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then PYTHON=$c; break; fi
  done
fi
PY=${PYTHON:?no Python 3.12 found: set PYTHON}
pkgs=(
  transformers==5.23.0 regex typing-extensions
  grpcio==1.85.1 grpcio-health-checking==1.85.1 grpcio-reflection==1.85.1 grpcio-status==1.85.1
  protobuf==7.35.1 googleapis-common-protos
  silero-vad==6.2.3 soxr soundfile cffi pycparser
  pydantic pydantic-core pydantic-settings annotated-types typing-inspection python-dotenv
  msgspec segno "av>=14" "opuslib-next>=1.3.1,<2" webvtt-py langcodes python-json-logger
  aiortc aioice pyee pylibsrtp cryptography pyopenssl google-crc32c dnspython ifaddr
  # the denoiser's librnnoise (audio/denoise.py finds it by find_spec and loads it with ctypes; the
  # package's own Python, which imports audiolab and matplotlib, is never imported: no dependencies)
  "pyrnnoise>=0.4.5,<0.5"
  pyahocorasick  # words.py: terms matched in one pass of an Aho-Corasick automaton
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
site=$tmp/site312
"$PY" -m pip install -q --no-deps --no-compile --target "$site" --python-version 3.12 --implementation cp \
  --only-binary=:all: "${plat[@]}" --platform any "$tmp"/whl/*.whl
raw=$(du -sb "$site" | cut -f1)
# the VAD loads data/silero_vad.onnx alone (vad/silero.py): its other model files stay behind
find "$site/silero_vad/data" -type f ! -name silero_vad.onnx ! -name __init__.py -delete
# transformers' models: the five the service loads (model/stages/seamless.py, model/stages/lid.py, their auto classes)
find "$site/transformers/models" -mindepth 1 -maxdepth 1 -type d ! -name auto ! -name encoder_decoder \
  ! -name seamless_m4t ! -name seamless_m4t_v2 ! -name wav2vec2 -exec rm -rf {} +
find "$site" \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' -o -name '*.c' -o -name '*.h' -o -name '*.cpp' \) -delete
find "$site" -mindepth 2 -maxdepth 2 -type d -name tests -exec rm -rf {} +
rm -rf "$site/bin"
find "$site" -name '*.so*' -type f ! -path '*.libs/*' -exec strip --strip-unneeded {} +
python3 benchmarks/gpu/stub_codecs.py "$site"
tar cf - -C "$tmp" site312 | xz -T0 -9e > .gpu/site.tar.xz
echo "site: $raw B unpacked as installed, $(du -sb "$site" | cut -f1) pruned, $(stat -c %s .gpu/site.tar.xz) packed"
du -sb .gpu/* | sed "s/^/  /"
du -sb .gpu | sed "s/^/  /"
echo "next: bash benchmarks/gpu/preflight.sh (the carry's size, then the packed site on Python 3.12)"
