"""SIP over TLS on a port of its own (``sip.tls_port``, RFC 3261 §26.2; issue 60), with the
server's certificate (``server.tls_cert_file``, made at test time by trustme). Debian 12's SIPp
3.6.1 is built without OpenSSL (``-t l1``: "To use a TLS transport you must compile SIPp with
OpenSSL"), so the callers are Python's ``ssl`` client sending an OPTIONS and an INVITE written
from RFC 3261 (§11, §13; Via ``SIP/2.0/TLS``, §18.2.1 and §26.2) and baresip 1.0 (its TLS
transport: a ``transport=tls`` URI, the CA in ``sip_cafile``) calling end to end."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.support.live_server import make_settings, serving
from tests.support.phone_carriers import AccessLines, access_lines, calls_ended
from tests.support.sip_peers import baresip_call, heard_energy, speech_wav
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]  # (async tests: asyncio_mode is auto)

SPEECH_S = 6.0
TAIL_S = 5.0


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


def tls_settings(test_model_dir: Path, tmp: Path) -> tuple[Settings, trustme.CA]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    settings = make_settings(test_model_dir)
    settings.sip.port = 0
    settings.sip.tls_port = 0
    settings.server.tls_cert_file = settings.server.tls_key_file = tmp / "server.pem"
    return settings, ca


class TlsCaller:
    """One TLS connection to the door (the server's certificate verified for 127.0.0.1)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.got = b""

    @classmethod
    async def open(cls, port: int, ca: trustme.CA) -> TlsCaller:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        return cls(*await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1"))

    async def send(self, message: bytes, *, until: bytes) -> bytes:
        """``message``, then what comes back until ``until`` appears (10 s at most)."""
        self.got = b""
        self.writer.write(message)
        async with asyncio.timeout(10):
            while until not in self.got:
                chunk = await self.reader.read(65536)
                assert chunk, f"the connection closed; got {self.got[:600]!r}"
                self.got += chunk
        return self.got

    def close(self) -> None:
        self.writer.close()


def request(method: str, body: bytes = b"", extra: str = "", *, cseq: int = 1, branch: str = "") -> bytes:
    """A request with RFC 3261 §8.1.1's mandatory headers, over TLS (§26.2: Via transport TLS)."""
    head = (
        f"{method} sip:eng-spa@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-tls-{branch or method.lower()}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@127.0.0.1>;tag=alice1\r\n"
        "To: <sip:eng-spa@127.0.0.1>\r\n"
        f"Call-ID: tls-{method.lower() if method == 'OPTIONS' else 'call'}@127.0.0.1\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@127.0.0.1:5061;transport=tls>\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def header(response: bytes, name: bytes) -> bytes:
    return next(ln.split(b":", 1)[1].strip() for ln in response.split(b"\r\n") if ln.lower().startswith(name + b":"))


async def test_options_and_a_call_over_tls_are_answered_on_the_tls_port_and_plain_sip_there_is_not(
    test_model_dir: Path, tmp_path: Path, access: AccessLines
) -> None:
    settings, ca = tls_settings(test_model_dir, tmp_path)
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        ports = live.server.ports()
        port = int(ports["sip_tls_port"])
        assert port not in (0, ports["sip_port"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # SIP in the clear on the TLS port
        writer.write(request("OPTIONS"))
        async with asyncio.timeout(15):
            assert not (await reader.read()).startswith(b"SIP/2.0")  # no answer: the handshake failed, closed
        writer.close()
        caller = await TlsCaller.open(port, ca)
        got = await caller.send(request("OPTIONS"), until=b"\r\n\r\n")
        assert got.startswith(b"SIP/2.0 200 OK\r\n"), got[:300]
        assert b"SIP/2.0/TLS 127.0.0.1:5061" in got and b"INVITE" in header(got, b"allow")
        sdp = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
        got = await caller.send(request("INVITE", sdp, "Content-Type: application/sdp\r\n"), until=b"SIP/2.0 200")
        ok = got[got.index(b"SIP/2.0 200 OK") :]
        assert f"127.0.0.1:{port};transport=tls".encode() in header(ok, b"contact")  # the dialog stays on TLS
        to = header(ok, b"to").decode()
        ack = request("ACK", branch="ack").replace(b"To: <sip:eng-spa@127.0.0.1>", f"To: {to}".encode())
        bye = request("BYE", cseq=2).replace(b"To: <sip:eng-spa@127.0.0.1>", f"To: {to}".encode())
        got = await caller.send(ack + bye, until=b"\r\n\r\n")
        assert got.startswith(b"SIP/2.0 200 OK\r\n") and header(got, b"cseq") == b"2 BYE", got[:300]
        caller.close()
        await calls_ended(live.server)
    [line] = access.of("sip")
    assert line["transport"] == "TLS"


async def test_baresip_calls_over_tls_and_hears_translated_speech(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path, access: AccessLines
) -> None:
    wav = speech_wav(tmp_path, shared_audio, SPEECH_S, TAIL_S)
    settings, ca = tls_settings(test_model_dir, tmp_path)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        port = int(live.server.ports()["sip_tls_port"])
        uri = f"sip:eng-spa@127.0.0.1:{port};transport=tls"
        out, heard = await baresip_call(tmp_path, wav, uri, seconds=SPEECH_S + TAIL_S + 6, cafile=tmp_path / "ca.pem")
        await calls_ended(live.server)
    assert "Call established" in out, out[-2000:]
    [line] = access.of("sip")
    assert line["code"] == "OK" and line["transport"] == "TLS" and line["audio_s"] >= SPEECH_S
    assert heard is not None, out[-2000:]
    assert heard_energy(heard) > 0.05  # translated speech, not silence


def test_a_tls_port_without_the_servers_certificate_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"sip\.tls_port needs the server's certificate"):
        Settings(sip={"port": 5060, "tls_port": 5061})
