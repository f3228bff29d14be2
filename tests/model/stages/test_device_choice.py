"""The device and dtype the model runs on (model/stages/device.py; its own test module since issue
89 item 4): ``auto`` picks, the refusal of CUDA where torch has none (what ``serve`` says before
anything loads), the CPU kernel caches sized unless the environment says otherwise. Plain values
on this CPU."""

from __future__ import annotations

import os

import pytest
import torch

from translate_svc.model.stages import device

pytestmark = pytest.mark.unit


def test_auto_on_a_cpu_is_float32_and_named_dtypes_are_taken_as_named() -> None:
    cpu = torch.device("cpu")
    assert device.pick_dtype("auto", cpu) == torch.float32
    assert device.pick_dtype("bfloat16", cpu) == torch.bfloat16
    assert device.pick_dtype("float16", torch.device("cuda")) == torch.float16
    assert device.pick_device("cpu") == cpu


def test_auto_picks_cuda_exactly_where_torch_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.pick_device("auto").type == "cpu" and not device.cuda_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.pick_device("auto").type == "cuda" and device.cuda_available()


def test_cuda_asked_where_there_is_none_says_what_to_use_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    problem = device.device_problem("cuda")
    assert problem is not None and "CUDA is not available" in problem and "--device cpu or auto" in problem
    assert device.device_problem("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.device_problem("cuda") is None


def test_the_kernel_caches_are_sized_unless_the_environment_already_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    monkeypatch.setenv("LRU_CACHE_CAPACITY", "77")
    device.size_cpu_kernel_caches(123)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "123"
    assert os.environ["LRU_CACHE_CAPACITY"] == "77"  # the operator's own
