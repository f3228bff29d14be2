"""serving/allocator.py: the mmap threshold is fixed for the server and the processes it starts,
unless the operator's environment already sets it (issue 53)."""

from __future__ import annotations

import ctypes.util

import pytest

from translate_svc.serving import allocator

pytestmark = pytest.mark.unit

glibc = pytest.mark.skipif(not ctypes.util.find_library("c"), reason="needs a C library with mallopt")


@glibc
def test_the_threshold_is_fixed_and_handed_to_child_processes() -> None:
    env: dict[str, str] = {}
    assert allocator.fix_mmap_threshold(env) is True
    assert env == {allocator.ENV: str(128 * 1024)}


def test_an_operators_own_threshold_is_left_alone() -> None:
    env = {allocator.ENV: "1048576"}
    assert allocator.fix_mmap_threshold(env) is False
    assert env == {allocator.ENV: "1048576"}
