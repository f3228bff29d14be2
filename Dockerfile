# translate-svc, CUDA build: torch 2.13.0+cu129, the model in bfloat16 on the GPU.
#
#   docker build -t registry.example.com/translate-svc:0.1.0-cu129 .
#
# NOT BUILT OR RUN in this project's sessions (base images cannot be pulled there); checked
# statically by tests/deploy/test_dockerfiles.py. See docs/deploy.md.
#
# No weights inside: mount them at /app/model_cache (k8s: the translate-svc-model-cache volume).
# torch's cu129 wheels bring their own CUDA libraries (cuBLAS, cuDNN, ... as nvidia-* wheels), so
# the runtime base is NVIDIA's small "base" image (CUDA 12.9 runtime plus the container settings
# the NVIDIA runtime uses), not the cudnn-runtime image, which would add a second, unused cuDNN.
# The GPU node's driver must support CUDA 12.9.
# Python: 3.12, Ubuntu 24.04's own (the CUDA base image's distribution). The test suite runs on
# 3.11 (Dockerfile.cpu and the build machines); nothing here depends on either, but this image's
# Python is not the tested one.

# 1. The project wheel (pure Python; the same file as `pip wheel .` makes anywhere).
FROM python:3.11.11-slim-bookworm AS wheel
WORKDIR /src
RUN python -m pip install --no-cache-dir pip==26.3 setuptools==84.2.1
COPY pyproject.toml README.md ./
COPY translate_svc ./translate_svc
# the client distribution (translate-svc-client, which the server requires): its wheel beside the server's
COPY clients/python/pyproject.toml clients/python/README.md ./clients/python/
COPY clients/python/src ./clients/python/src
RUN python -m pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels ./clients/python .

# 2. The virtual environment: CUDA torch first (pinned, from PyTorch's cu129 index), then the
#    project's wheel and its dependencies from PyPI (torch==2.13.0 is then already satisfied).
FROM nvidia/cuda:12.9.1-base-ubuntu24.04 AS venv
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN python -m pip install --no-cache-dir pip==26.3
RUN python -m pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cu129
COPY --from=wheel /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl
# serve --riva: the Riva-compatible door's protos (docs/decisions.md): nvidia-riva-client pins
# protobuf 6, which pip cannot resolve beside ours (7); its stubs load under 7, so without its deps
RUN python -m pip install --no-cache-dir --no-deps nvidia-riva-client==2.27.0
# speaker labels (issue 72): only the GE2E weights Resemblyzer ships are used, so without its
# dependencies (webrtcvad is an sdist that needs a compiler)
RUN python -m pip install --no-cache-dir --no-deps Resemblyzer==0.1.4
# the end of a turn (issue 102): only the Smart Turn v3 ONNX file Pipecat's wheel ships is read
RUN python -m pip install --no-cache-dir --no-deps pipecat-ai==1.14.0

# 3. Runtime: the same base and Python as the venv stage, no compilers, no pip cache, non-root.
FROM nvidia/cuda:12.9.1-base-ubuntu24.04 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 libopus0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 translate \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin translate \
    && mkdir -p /app/model_cache
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    TRANSLATE_SVC_SERVER__HOST=0.0.0.0 \
    TRANSLATE_SVC_MODEL__PATH=/app/model_cache/seamless-m4t-v2-large
WORKDIR /app
USER 10001:10001
# 50051: gRPC (Translator, grpc.health.v1 for the probes, reflection); 8000: /metrics when
# TRANSLATE_SVC_SERVER__METRICS_PORT=8000 is set (the k8s manifests set it); 8080: the HTTP port
# (OpenAI-compatible door, phone calls, rooms' WebSocket and page) when TRANSLATE_SVC_SERVER__HTTP_PORT=8080
EXPOSE 50051 8000 8080
ENTRYPOINT ["translate-svc", "serve"]
