"""The decode step's CUDA graphs (model/decode/graphs.py, issue 70; its own test module since issue
89 item 4): a pool's step is captured only when it is static, graphs are asked for and the decoder
is on a CUDA device; elsewhere the same static path runs eagerly, and ``StepGraphs`` refuses a pool
it cannot capture. Stand-ins for the decoder and the pool: no checkpoint. The captures themselves
run on a GPU (tests/gpu/test_decode_graphs.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

from translate_svc.model.decode import graphs

pytestmark = pytest.mark.unit


def decoder_on(device: str) -> Any:
    param = SimpleNamespace(device=torch.device(device))
    return SimpleNamespace(model=SimpleNamespace(text_decoder=SimpleNamespace(parameters=lambda: iter([param]))))


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The pools ``decode_pool`` makes and the captures it asks for, recorded instead of run."""
    log: list[tuple[str, Any]] = []

    def pool(decoder: Any, **kw: Any) -> Any:
        log.append(("pool", kw))
        return SimpleNamespace(**kw)

    class Graphs:
        def __init__(self, loop: Any) -> None:
            log.append(("graphs", loop))

        def capture(self) -> None:
            log.append(("capture", None))

    monkeypatch.setattr(graphs, "DecodeLoop", pool)
    monkeypatch.setattr(graphs, "StepGraphs", Graphs)
    return log


@pytest.mark.parametrize(
    ("device", "static", "asked"), [("cpu", True, True), ("cuda", False, True), ("cuda", True, False)]
)
def test_a_pool_is_captured_only_static_with_graphs_on_cuda(
    made: list[tuple[str, Any]], device: str, static: bool, asked: bool
) -> None:
    graphs.decode_pool(decoder_on(device), slots=4, max_frames=32, static=static, graphs=asked, read_behind=True)
    assert made == [("pool", {"slots": 4, "max_frames": 32, "static": static, "read_behind": True})]


def test_a_static_pool_on_cuda_with_graphs_is_captured_at_once(made: list[tuple[str, Any]]) -> None:
    loop = graphs.decode_pool(decoder_on("cuda"), slots=4, max_frames=32, static=True, graphs=True)
    assert [kind for kind, _ in made] == ["pool", "graphs", "capture"]
    assert made[1][1] is loop


def test_step_graphs_refuse_a_pool_off_cuda_or_not_static() -> None:
    with pytest.raises(RuntimeError, match="CUDA device"):
        graphs.StepGraphs(SimpleNamespace(device=torch.device("cpu"), static=True))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="static"):
        graphs.StepGraphs(SimpleNamespace(device=torch.device("cuda"), static=False))  # type: ignore[arg-type]
