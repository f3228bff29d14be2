"""Stages under captured graphs and their host staging (model/capture.py, issue 88; its own test
module since issue 89 item 4), on this CPU: a graphed stage runs its static path eagerly inside its
region, uploads go through one reused staging buffer without a later upload changing an earlier
tensor, and a host read is one wait however many tensors it reads. No checkpoint."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from translate_svc.model import capture, regions

pytestmark = pytest.mark.unit

CPU = torch.device("cpu")


class Regions:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.reads: list[str] = []

    def entered(self, name: str) -> None:
        self.names.append(name)

    def left(self, name: str) -> None:
        pass

    def read(self, what: str) -> None:
        self.reads.append(what)


def test_a_graphed_stage_on_cpu_runs_eagerly_inside_its_region_and_captures_nothing() -> None:
    calls: list[tuple[int, float]] = []

    def run(x: torch.Tensor, *, scale: float) -> torch.Tensor:
        calls.append((x.shape[0], scale))
        return x * scale

    stage = capture.GraphedStage("t2u.chars", run, CPU)
    seen = Regions()
    with regions.observing(seen):
        out = stage((4,), torch.arange(4.0), scale=2.0)
        again = stage(None, torch.arange(3.0), scale=3.0)
    assert isinstance(out, tuple) and len(out) == 1  # a single tensor comes back as a tuple
    assert out[0].tolist() == [0.0, 2.0, 4.0, 6.0] and again[0].tolist() == [0.0, 3.0, 6.0]
    assert calls == [(4, 2.0), (3, 3.0)]  # every call ran: nothing replayed
    assert seen.names == ["t2u.chars", "t2u.chars"]
    assert (stage.captured, stage.failures) == (0, 0)


def test_an_upload_is_a_copy_a_later_upload_never_changes() -> None:
    first = capture.upload([[1, 2, 3], [4, 5, 6]], torch.long, CPU)
    second = capture.upload([[7, 8, 9], [0, 0, 0]], torch.long, CPU)  # same staging, same shape
    assert first.dtype == torch.long and first.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert second.tolist() == [[7, 8, 9], [0, 0, 0]]


def test_the_staging_buffer_grows_to_the_largest_upload_and_zeroes_what_fill_skips() -> None:
    staging = capture.HostStaging(torch.float32, CPU)

    def ones_in_first_row(a: np.ndarray) -> None:
        a[0] = 1.0

    small = staging.upload((2, 2), ones_in_first_row)
    large = staging.upload((3, 5), ones_in_first_row)
    again = staging.upload((2, 2), ones_in_first_row)  # after a larger one: the rest is zeros again
    assert small.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert large.shape == (3, 5) and large.sum().item() == 5.0
    assert again.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    assert all(regions.is_host_buffer(slot.host) for slot in staging._slots)


def test_no_upload_waits_for_an_earlier_copy_while_the_ring_has_room() -> None:
    """Counted as on CUDA (an observer installed: a copy is in flight until the host waits past
    it): each upload behind copies in flight takes a buffer of its own instead of waiting, and a
    buffer whose copy the host has waited past is taken again. Only a ring full of copies in
    flight makes an upload wait, for the oldest, and that wait is counted where it is written."""
    seen = Regions()
    staging = capture.HostStaging(torch.long, CPU, most=3)
    with regions.observing(seen):
        got = [staging.upload((2,), lambda a, k=k: a.__setitem__(..., k)) for k in range(3)]
        assert seen.reads == [] and staging.buffers == 3  # three copies in flight, none waited for
        capture.waited_past(capture.copies_mark())  # the host waited for the device (a read)
        got += [staging.upload((2,), lambda a: a.__setitem__(..., 7))]
        assert seen.reads == [] and staging.buffers == 3  # the oldest buffer taken again
        got += [staging.upload((2,), lambda a: a.__setitem__(..., 8)) for _ in range(3)]
    assert seen.reads == ["staging full"] and staging.waits == 1  # the fourth in flight waited
    assert [g.tolist() for g in got] == [[0, 0], [1, 1], [2, 2], [7, 7], [8, 8], [8, 8], [8, 8]]


def test_a_graphed_stage_on_a_cpu_with_graphs_on_copies_as_cuda_does() -> None:
    """The CUDA plan on a CPU: a bucket keeps a graph's static buffers, inputs are copied in and
    every output copied out outside the region (the GPU's host launches them): a caller keeps what
    it was given whatever runs after. Never the bucket's own buffers: a thread's graphs share one
    pool, where another graph's replay may overwrite them (on an H200, 2026-11-30, HiFi-GAN's
    durations lent past another group's replay read as 10^18 frames)."""
    from tests.support.dispatch_count import HostCosts

    stage = capture.GraphedStage("vocoder.hifigan", lambda x: (x * 2, x + 1), CPU)
    stage.enabled = True
    x = torch.arange(3.0)
    stage((3,), x)  # the warm-up meets the bucket
    with HostCosts() as costs:
        doubled, plus_one = stage((3,), x)
    counts = costs.total()
    assert (counts.kernels, counts.in_regions, counts.graph_launches) == (3, 4, 1)  # copy in, two out
    assert doubled.tolist() == [0.0, 2.0, 4.0] and plus_one.tolist() == [1.0, 2.0, 3.0]
    stage((3,), torch.full((3,), 5.0))
    assert doubled.tolist() == [0.0, 2.0, 4.0] and plus_one.tolist() == [1.0, 2.0, 3.0]  # copies: kept


def test_a_host_read_of_many_tensors_is_one_wait() -> None:
    seen = Regions()
    with regions.observing(seen):
        got = capture.host_read([torch.arange(3), torch.ones(2, 2)])
    assert seen.reads == ["host_read"]
    assert [g.tolist() for g in got] == [[0, 1, 2], [[1.0, 1.0], [1.0, 1.0]]]


def test_each_thread_has_a_graph_pool_of_its_own() -> None:
    """The model thread and the finish thread replay at once: their graphs' memory must not overlap."""
    here = capture.thread_pool()
    assert capture.thread_pool() is here
    other: list[capture.GraphPool] = []
    worker = threading.Thread(target=lambda: other.append(capture.thread_pool()))
    worker.start()
    worker.join()
    assert other and other[0] is not here
