"""Concurrent SIP calls against one ``translate-svc serve --sip-port`` process on the stable test
translator, with SIPp 3.6.1 as the load (issue 60): CPU per call, our RTP's lateness at the server,
ear-voice lag.

    PYTHONPATH=. python -m benchmarks.tools.sip_calls --calls 20 --seconds 10

SIPp places ``calls`` calls at ``rate`` a second with ``tests/support/sip/call_pcap.xml``: each an
INVITE (PCMU), jfk.flac's first ``seconds`` played at real time from a pcap (``play_pcap_audio``),
then a BYE once the translation's tail had time to play. Reported: the server process's CPU
seconds per call-second (from /proc), its RTP frames' lateness (p50/p99 from its histogram; the
worst on any access line), its 20 ms slots (``frame_slots``: sent as ``rtp_sent``, withheld before
the caller's media came, or ``frames_skipped``, late past ``playout.CATCH_UP_S``: the pacing's
exactness, which ``tests/transport/sip/test_sipp_calls.py`` leaves to this bench, issue 71), the
ear-voice lag (p50/p95 from the server's histogram, interpolated within its buckets), the calls'
codes, and SIPp's verdict. SIPp records
no jitter of the RTP it receives, so the lateness is the server's own (when each packet left
against its slot). SIPp runs on this machine's cores beside the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.tools.phone_calls import served_figures
from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.phone_carriers import ulaw_bytes
from tests.support.proc import cpu_s, free_port
from tests.support.server_process import ServerProcess
from tests.support.sip_peers import scenario, sipp, write_rtp_pcap
from tests.support.speech import speech_pcm16

#: after the speech, how long each call stays up for its translated tail
TAIL_S = 4.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=10.0, help="calls placed a second")
    args = ap.parse_args()
    sip_port, metrics_port = free_port(), free_port()
    env = {
        "TRANSLATE_SVC_SERVER__METRICS_PORT": str(metrics_port),
        "TRANSLATE_SVC_LOG_FORMAT": "json",
        "TRANSLATE_SVC_LIMITS__MAX_STREAMS": str(args.calls + 8),
        "TRANSLATE_SVC_SIP__MAX_CALLS": str(args.calls + 8),
        "TRANSLATE_SVC_SIP__INVITE_BURST": str(args.calls + 8),
        "TRANSLATE_SVC_SIP__INVITES_PER_S": str(max(5.0, 2 * args.rate)),
    }
    tmp = Path(tempfile.mkdtemp(prefix="sip-calls-"))
    pcap = write_rtp_pcap(tmp / "jfk.pcap", ulaw_bytes(speech_pcm16(SHARED_AUDIO / "jfk.flac", args.seconds, 8000)))
    sc = scenario(
        tmp,
        "call_pcap.xml",
        pcap=str(pcap),
        pause_ms=str(int(1000 * (args.seconds + TAIL_S))),
        pt="0",
        codec="PCMU",
        headers="X-Translate-Target: spa",
        seconds=str(args.seconds),
    )
    srv = ServerProcess(
        ["--model", str(TEST_MODEL), "--port", "0", "--sip-port", str(sip_port), "--test-translator", "stable"], env=env
    )
    try:
        cpu0, t0 = cpu_s(srv.proc.pid), time.monotonic()
        run = asyncio.run(
            sipp(tmp, sip_port, sc, calls=args.calls, rate=args.rate, timeout_s=args.seconds + TAIL_S + 60)
        )
        wall = time.monotonic() - t0
        cpu = cpu_s(srv.proc.pid) - cpu0
        time.sleep(1.0)
        lags, late, lines, codes = served_figures(srv, metrics_port)
        call_s = args.seconds + TAIL_S
        report: dict[str, Any] = {
            "calls": args.calls,
            "call_seconds": call_s,
            "wall_s": round(wall, 1),
            "server_cpu_s": round(cpu, 2),
            "cpu_per_call_pct_of_a_core": round(100 * cpu / (args.calls * call_s), 2),
            "codes": codes,
            "sipp_exit": run.returncode,
            "ear_voice_lag_s": {f"p{int(q * 100)}": round(v, 2) for q, v in lags.items()},
            "server_frame_lateness_ms": {f"p{int(q * 100)}": round(1000 * v, 2) for q, v in late.items()},
            "frame_late_max_ms": max((x.get("frame_late_max_ms", 0) for x in lines), default=0),
            "frame_slots": sum(x.get("frame_slots", 0) for x in lines),
            "frames_skipped": sum(x.get("frames_skipped", 0) for x in lines),
            "rtp_received": sum(x.get("rtp_received", 0) for x in lines),
            "rtp_sent": sum(x.get("rtp_sent", 0) for x in lines),
            "rtp_withheld": sum(x.get("rtp_withheld", 0) for x in lines),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(report, indent=2))
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
