"""What a live Opus stream's audio costs to decode, per 20 ms packet: libopus at 48 kHz with soxr's
stream resampler to 16 kHz after it (the front end before issue 97 item 5), against libopus
decoding straight at 16 kHz (``OpusStreamDecoder(channels, 16000)``, no resampler): the thread's
CPU time (``time.thread_time``) over jfk.flac's packets, encoded as a WebRTC sender does
(``tests/support/speech.opus_packets``: 48 kHz mono, 20 ms, 32 kbit/s), three rounds.

Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.studies.opus_decode_rate
"""

from __future__ import annotations

import time

from tests.support.paths import SHARED_AUDIO
from tests.support.speech import opus_packets
from translate_svc.audio.opus import OpusStreamDecoder
from translate_svc.audio.resample import StreamResampler
from translate_svc.client_cli.decode import load_pcm16k


def main() -> None:
    packets = opus_packets(load_pcm16k(SHARED_AUDIO / "jfk.flac"))
    for _ in range(3):
        wide, down = OpusStreamDecoder(1), StreamResampler(48000, 16000)
        t = time.thread_time()
        for p in packets:
            down.process(wide.decode(p))
        before = (time.thread_time() - t) / len(packets)
        narrow = OpusStreamDecoder(1, 16000)
        t = time.thread_time()
        for p in packets:
            narrow.decode(p)
        now = (time.thread_time() - t) / len(packets)
        print(
            f"{len(packets)} packets: 48 kHz + soxr {before * 1e6:.1f} us, 16 kHz {now * 1e6:.1f} us a packet "
            f"({(before - now) * 1e6:.1f} us less)"
        )


if __name__ == "__main__":
    main()
