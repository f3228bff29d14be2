"""Recordings as the tests make and read them (issue 61): a tokens file of tenants that record
(audio, text) and one that does not, a key file, a server serving both on loopback, a gRPC stream
of a tenant, the recordings API over HTTP with aiohttp's client, and a file decrypted on the
test's side with the tenant's key through ``cryptography`` (the format of
``translate_svc/recordings/sealed.py``'s docstring)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.raw import output_options
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

#: tokens of the tenants: acme records audio, texty text only, quiet nothing; the *_READ tokens
#: hold the ``recordings`` permission alone; ACME_STREAM_ONLY streams but may not read recordings
ACME = "acme-stream-token-1a2b3c"
ACME_READ = "acme-read-token-4d5e6f"
TEXTY = "texty-stream-token-7a8b9c"
TEXTY_READ = "texty-read-token-0d1e2f"
QUIET = "quiet-stream-token-3a4b5c"
QUIET_READ = "quiet-read-token-6d7e8f"


def tokens_text(retention_days: float = 30) -> str:
    return (
        f"{ACME} * tenant=acme record=audio retention_days={retention_days}\n"
        f"{ACME_READ} recordings tenant=acme\n"
        f"{TEXTY} * tenant=texty record=text\n"
        f"{TEXTY_READ} recordings tenant=texty\n"
        f"{QUIET} * tenant=quiet\n"
        f"{QUIET_READ} recordings tenant=quiet\n"
    )


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class KeyFile:
    """The tenants' keys as the test knows them: (tenant, key id) -> key bytes."""

    path: Path
    keys: dict[tuple[str, str], bytes] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def add(self, tenant: str, key_id: str) -> None:
        """A new key for ``tenant``, its current one from now on (the file rewritten at once)."""
        key = new_key()
        self.keys[(tenant, key_id)] = base64.b64decode(key)
        self.lines.append(f"{tenant} {key_id} {key}")
        tmp = self.path.with_suffix(".new")
        tmp.write_text("\n".join(self.lines) + "\n")
        os.replace(tmp, self.path)


@dataclass
class Setup:
    tokens: Path
    keys: KeyFile
    directory: Path


def setup(tmp: Path, retention_days: float = 30) -> Setup:
    tokens = tmp / "tokens"
    tokens.write_text(tokens_text(retention_days))
    keys = KeyFile(tmp / "recording-keys")
    keys.add("acme", "k1")
    keys.add("texty", "t1")
    keys.add("quiet", "q1")
    return Setup(tokens, keys, tmp / "recordings")


def settings(model_dir: Path, s: Setup, **recordings: Any):  # type: ignore[no-untyped-def]
    from translate_svc.settings import AuthSettings, RecordingsSettings

    base = make_settings(model_dir)
    return base.model_copy(
        update={
            "auth": AuthSettings(tokens_file=s.tokens),
            "server": base.server.model_copy(update={"http_port": 0}),
            "recordings": RecordingsSettings(dir=s.directory, key_file=s.keys.path, **recordings),
        }
    )


@contextlib.asynccontextmanager
async def recording_server(model_dir: Path, s: Setup, **recordings: Any) -> AsyncIterator[LiveServer]:
    async with serving(settings(model_dir, s, **recordings)) as live:
        yield live


def http_url(live: LiveServer, path: str) -> str:
    door = live.server.http
    assert door is not None
    return f"http://127.0.0.1:{door.port}{path}"


async def api(live: LiveServer, method: str, path: str, token: str) -> tuple[int, bytes, dict[str, str]]:
    """One request to the recordings API: (status, body, headers)."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, http_url(live, path), headers={"Authorization": f"Bearer {token}"}) as r,
    ):
        return r.status, await r.read(), dict(r.headers)


@dataclass
class Received:
    """What the client of one stream received."""

    session_id: str
    resume_token: str
    segments: list[pb.SegmentResult]
    ended: pb.StreamEnd | None


async def stream(
    stub: pb_grpc.TranslatorStub, pcm: np.ndarray, token: str, targets: list[str], *, word_timings: bool = False
) -> Received:
    """A LINEAR16 16 kHz stream of ``pcm`` in 100 ms chunks, with speech and a transcript (and
    ``word_timings``)."""
    output = output_options(speech=True, transcript=True)
    output.word_timings = word_timings

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
                source_language="eng",
                target_languages=targets,
                output=output,
            )
        )
        for start in range(0, len(pcm), 1600):
            yield pb.StreamingTranslateRequest(audio=pcm[start : start + 1600].tobytes())

    received = Received("", "", [], None)
    async for r in stub.StreamingTranslate(requests(), metadata=bearer(token)):
        kind = r.WhichOneof("response")
        if kind == "started":
            received.session_id = r.started.session_id
            received.resume_token = r.started.resume_token
        elif kind == "segment":
            received.segments.append(r.segment)
        elif kind == "ended":
            received.ended = r.ended
    return received


def unseal(blob: bytes, data_key: bytes, name: str) -> bytes:
    """A sealed file's plaintext, read by the format alone (not the server's reader)."""
    magic = b"TSREC1\n"
    assert blob.startswith(magic)
    header = blob[: len(magic) + 4 + 7]
    (chunk,) = struct.unpack(">I", header[len(magic) : len(magic) + 4])
    prefix = header[len(magic) + 4 :]
    aead = AESGCM(data_key)
    body = blob[len(header) :]
    block = chunk + 16
    pieces = [body[i : i + block] for i in range(0, len(body), block)] or [b""]
    out = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        nonce = prefix + struct.pack(">IB", i, 1 if last else 0)
        out.append(aead.decrypt(nonce, piece, header + name.encode()))
    return b"".join(out)


def data_key(manifest: dict[str, Any], tenant_key: bytes) -> bytes:
    """The recording's data key, unwrapped with its tenant's key (the associated data of
    ``translate_svc/recordings/keys.py``'s wrapping)."""
    key = manifest["key"]
    aad = f"translate-svc recording data key\n{manifest['tenant']}\n{manifest['id']}\n{key['id']}".encode()
    return AESGCM(tenant_key).decrypt(base64.b64decode(key["nonce"]), base64.b64decode(key["wrapped"]), aad)


def on_disk(directory: Path, tenant: str, recording_id: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / tenant / recording_id / "manifest.json").read_text())
    return manifest


def decoded_samples(ogg: bytes) -> tuple[int, int]:
    """An Ogg Opus file decoded with PyAV: (samples, rate)."""
    with av.open(io.BytesIO(ogg)) as c:
        frames = list(c.decode(audio=0))
    return sum(f.samples for f in frames), frames[0].sample_rate if frames else 48_000
