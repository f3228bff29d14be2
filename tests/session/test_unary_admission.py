"""Issue 52: the bounds every unary call meets before its request is read, as plain values.

- ``SessionManager.admit_unary``: per token (this process) and per tenant (the node's counters;
  the tokens file's ``unary_calls`` replaces ``limits.max_unary_calls_per_tenant``);
- ``SessionManager.receiving_clip``: a tenant's Translate calls still receiving their clip;
- ``rpc.read_request``: the one request of a request-streaming unary handler, by a deadline;
- the settings that tie the port's receive limit to a stream message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from tests.support.fake_engine import FakeEngineClient
from translate_svc.errors import ErrorCode, InvalidInput, Overloaded, ServiceError, TooSlow
from translate_svc.session.manager import SessionManager
from translate_svc.session.tenants.counters import LocalCounters
from translate_svc.session.tenants.tenant import Tenant, TenantCaps
from translate_svc.settings import LimitsSettings, Settings
from translate_svc.transport.rpc import call_deadline, read_request
from translate_svc.transport.tokens.file import parse_tokens
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

ACME = Tenant("acme")
CAPPED = Tenant("capped", TenantCaps(unary_calls=2))


def manager(**limits: float) -> SessionManager:
    return SessionManager(
        FakeEngineClient(),
        None,  # type: ignore[arg-type]  # no session is opened here
        SegmenterConfig(),
        LimitsSettings(**limits),  # type: ignore[arg-type]
        counters=LocalCounters(),
    )


async def refusal(m: SessionManager, tenant: Tenant, token: bytes | None) -> ServiceError:
    with pytest.raises(Overloaded) as e:
        async with m.admit_unary(tenant, token):
            pass
    return e.value


async def test_unary_calls_are_bounded_per_token_and_per_tenant_and_released() -> None:
    m = manager(max_unary_calls_per_token=2, max_unary_calls_per_tenant=3)
    async with m.admit_unary(ACME, b"t1"), m.admit_unary(ACME, b"t1"):
        err = await refusal(m, ACME, b"t1")  # the token's third
        assert "limits.max_unary_calls_per_token" in err.message and err.retry_after_ms == 1000
        async with m.admit_unary(ACME, b"t2"):  # another token of the tenant: the tenant's third
            err = await refusal(m, ACME, b"t3")
            assert "tenant 'acme'" in err.message and "limits.max_unary_calls_per_tenant" in err.message
            async with m.admit_unary(Tenant("other"), b"t9"):  # another tenant is not held back
                pass
    # every slot came back, and a token with none held is not kept
    assert m.gate.token_calls == {} and m.counters.count("acme/unary") == 0  # type: ignore[attr-defined]
    async with m.admit_unary(ACME, b"t1"), m.admit_unary(ACME, b"t1"), m.admit_unary(ACME, b"t2"):
        pass


async def test_a_tenants_unary_calls_cap_in_the_tokens_file_replaces_the_setting() -> None:
    m = manager(max_unary_calls_per_token=100, max_unary_calls_per_tenant=100)
    async with m.admit_unary(CAPPED, b"a"), m.admit_unary(CAPPED, None):  # None: a server without tokens
        err = await refusal(m, CAPPED, b"b")
    assert "unary_calls=2 in the tokens file" in err.message, err.message
    grants = dict(parse_tokens("tok * tenant=capped unary_calls=2\n", "f"))
    assert [g.tenant.caps.unary_calls for g in grants.values()] == [2]


async def test_a_tenants_clips_being_received_are_bounded() -> None:
    m = manager(max_clip_reads_per_tenant=2)
    async with m.receiving_clip(ACME), m.receiving_clip(ACME):
        with pytest.raises(Overloaded) as e:
            async with m.receiving_clip(ACME):
                pass
        async with m.receiving_clip(Tenant("other")):
            pass
    assert "Translate calls still receiving their clip" in e.value.message
    assert "limits.max_clip_reads_per_tenant" in e.value.message
    async with m.receiving_clip(ACME), m.receiving_clip(ACME):  # released
        pass


async def messages(*items: bytes, wait: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    for item in items:
        yield item
    if wait is not None:
        await wait.wait()


async def test_read_request_takes_one_message_by_the_deadline() -> None:
    assert await read_request(messages(b"x"), call_deadline(1.0), 1.0, "R") == b"x"
    for got, code, words in [
        (messages(), ErrorCode.INVALID_ARGUMENT, "carried no R"),
        (messages(b"a", b"b"), ErrorCode.INVALID_ARGUMENT, "takes one R"),
        (messages(wait=asyncio.Event()), ErrorCode.DEADLINE_EXCEEDED, "within 0.2 s of the call's start"),
        (messages(b"a", wait=asyncio.Event()), ErrorCode.DEADLINE_EXCEEDED, "request_read_timeout_ms"),
    ]:
        with pytest.raises((InvalidInput, TooSlow)) as e:
            await read_request(got, call_deadline(0.2), 0.2, "R")
        assert e.value.code == code and words in e.value.message, e.value.message


def test_the_receive_limit_must_hold_a_stream_message() -> None:
    Settings(limits=LimitsSettings(max_receive_message_bytes=64 * 1024 + 1024 * 1024))
    with pytest.raises(ValidationError, match=r"max_receive_message_bytes \(1048576\) must hold a stream message"):
        Settings(limits=LimitsSettings(max_receive_message_bytes=1024 * 1024))
    Settings(limits=LimitsSettings(max_receive_message_bytes=1024 * 1024, max_chunk_bytes=512 * 1024))
