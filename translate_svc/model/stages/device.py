"""The device and dtype the model runs on: picked at load (``pick_device``, ``pick_dtype``), and
whether the model can run on the device asked for (checked by ``serve`` before anything loads)."""

from __future__ import annotations

import os

import torch

#: entries in oneDNN's primitive cache and in ideep's (PyTorch's CPU convolutions), each 1024 by
#: default; the warm-up ``buckets`` builds a few thousand kernels (every encoder, t2u and vocoder
#: bucket), and with 1024 the least recent were evicted and rebuilt on the next request: a vocoder
#: call at a warmed 243-frame bucket took 451 ms first after the warm-up, then 150 ms, against 38 ms
#: with 16384 (docs/performance.md)
CPU_KERNEL_CACHE = 16_384


def size_cpu_kernel_caches(entries: int = CPU_KERNEL_CACHE) -> None:
    """Size the CPU kernel caches (``CPU_KERNEL_CACHE``) unless the environment already does. Both
    are read once, when the first convolution runs: call before any does (``SeamlessStages``)."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(entries))
    os.environ.setdefault("LRU_CACHE_CAPACITY", str(entries))


def device_problem(device: str) -> str | None:
    """Why the model cannot run on ``device`` here, or None: ``cuda`` where torch has no CUDA."""
    if device == "cuda" and not torch.cuda.is_available():
        return (
            f"--device cuda, but CUDA is not available here (torch {torch.__version__}, "
            f"CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto"
        )
    return None


def cuda_available() -> bool:
    """Whether torch sees a CUDA device here (``--device auto`` picks it: model/stages/seamless.py)."""
    return torch.cuda.is_available()


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]


def cuda_runtime() -> str:
    """The CUDA runtime's choices that change a model's speed and start-up, for the log at load:
    torch's and CUDA's versions, cuDNN's, ``cudnn.benchmark``, lazy module loading and the caching
    allocator's configuration (record them beside every GPU figure)."""
    import os

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    return (
        f"device {name}, torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, cuDNN {cudnn or 'none'}, "
        f"cudnn.benchmark={torch.backends.cudnn.benchmark}, "
        f"CUDA_MODULE_LOADING={os.environ.get('CUDA_MODULE_LOADING', '(default: LAZY)')}, "
        f"PYTORCH_CUDA_ALLOC_CONF={os.environ.get('PYTORCH_CUDA_ALLOC_CONF', '(default)')}"
    )
