"""A server process's ``/metrics`` read over HTTP, as the tests that bound what a client makes it
compute read them: a series summed, the segments the model ran, the audio the sessions read."""

from __future__ import annotations

import asyncio
import re
import urllib.request

BYTES_PER_S = 32000  # 16 kHz LINEAR16


class Metrics:
    """The ``/metrics`` of a server whose metrics port is ``port``, on loopback."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"

    async def value(self, pattern: str) -> float:
        """The sum of every series whose name (and labels) match ``pattern``."""
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(self.url, timeout=5).read().decode())
        return sum(float(v) for v in re.findall(rf"^{pattern} ([0-9.e+]+)$", body, re.M))

    async def computed(self) -> int:
        """Segments the model ran."""
        return int(await self.value("translate_svc_batch_size_sum"))

    async def audio_read_bytes(self) -> float:
        """Audio the sessions read (counted a second or more at a time)."""
        return await self.value(r"translate_svc_tenant_audio_seconds_total\{[^}]*\}") * BYTES_PER_S
