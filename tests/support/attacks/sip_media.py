"""Issue 87's attack on a SIP call's RTP port (H16's residual: a DTMF flood still cost 6.3 s of the
server's CPU in 20 s), and a run that measures it against real servers, before and after the fix:

    PYTHONPATH=$PWD python -m tests.support.attacks.sip_media measure --checkout /tmp/base87 --checkout . \\
        --json out/attacks-sip87-dtmf.json

``flood_cpu``: a call (its INVITE and ACK from an allowed source), then, from the call's media
address, RFC 4733 end packets (each its own event: a new timestamp) as fast as one socket sends,
or, as the control, one G.711 packet every 20 ms (a phone's own rate); the server process's CPU
(``/proc/PID/stat``) over those seconds. Packets per RFC 3550 §5.1 and RFC 4733 §2.3
(``sip_peer.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from tests.support.attacks.checkouts import add_measure, commit, save_runs
from tests.support.attacks.sip_peer import RtpSocket, SipPeer, dtmf_end, offer, rtp_packet
from tests.support.proc import cpu_s


async def flood_cpu(sip: tuple[str, int], pid: int, *, seconds: float, flood: bool = True) -> dict[str, Any]:
    """A call, then ``seconds`` of DTMF end packets as fast as the socket sends (``flood``) or of
    one audio packet every 20 ms: the server's CPU seconds over them, and packets sent."""
    media = RtpSocket()
    out: dict[str, Any] = {"sent": 0}
    try:
        async with SipPeer(sip) as peer:
            resp = await peer.invite(offer(*media.address))
            out["invite_status"] = resp.status if resp else None
            where = resp.sdp_media() if resp is not None else None
            if where is None:
                return out
            loop = asyncio.get_running_loop()
            await asyncio.sleep(1.0)  # the call's start is not the flood's cost
            c0, t0 = cpu_s(pid), loop.time()
            end, n = t0 + seconds, 0
            while loop.time() < end:
                if flood:
                    for _ in range(50):
                        media.sock.sendto(dtmf_end(1, n, 1000 + 800 * n), where)
                        n += 1
                    await asyncio.sleep(0)
                else:
                    media.sock.sendto(rtp_packet(0, n, 160 * n, 0xCA11, b"\xff" * 160), where)
                    n += 1
                    await asyncio.sleep(0.02)
            took = loop.time() - t0
            cpu = cpu_s(pid) - c0
            out.update(sent=n, seconds=round(took, 1), server_cpu_s=round(cpu, 2))
            out["server_cpu_per_s"] = round(cpu / took, 3)
            bye = await peer.bye()
            out["bye_status"] = bye.status if bye else None
    finally:
        await media.close()
    return out


async def measure_one(checkout: Path, model: str, seconds: float) -> dict[str, Any]:
    from tests.support.attacks.sip import server

    out: dict[str, Any] = {"checkout": str(checkout), "commit": commit(checkout)}
    with server(checkout, model) as srv:
        out["control_call"] = await flood_cpu(srv["sip"], srv["pid"], seconds=seconds, flood=False)
        out["dtmf_flood"] = await flood_cpu(srv["sip"], srv["pid"], seconds=seconds)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    m = add_measure(sub)
    m.add_argument("--seconds", type=float, default=20.0, help="how long each flood lasts (s)")
    opts = ap.parse_args(argv)
    runs = [asyncio.run(measure_one(c.resolve(), opts.model, opts.seconds)) for c in opts.checkout]
    save_runs(runs, opts.json)
    print(json.dumps({"done": len(runs)}), file=sys.stderr)


if __name__ == "__main__":
    main()
