"""Simultaneous interpretation (issue 33) against segment mode, through a real server at real time.

Run from the repository root::

    python -m benchmarks.tools.simultaneous --inputs continuous,conversational --modes segment,simul:1000:2
    python -m benchmarks.tools.simultaneous --load-streams 16 --load-s 60

Each run starts one ``translate-svc serve --test-translator stable`` (the made-up translator with
exact commit points, ``translate_svc/model/testing/stable.py``: one word per 400 ms of audio, 10 units and
200 ms of speech per word) on the test checkpoint, pinned to core 0, with ``/metrics`` on; this
process (pinned to core 1) streams the input as 20 ms LINEAR16 chunks paced at real time with the
SDK (``simultaneous=SimultaneousOptions(step_ms, agreement)`` or not), and logs every ``Commit``
and ``Segment`` with its arrival time (wall ms since the first audio sent) and the audio sent by
then. Inputs:

- ``continuous``: the speech regions of silero_test.wav then jfk.flac (as the server's own VAD
  cuts them, padded), joined with no pause but the pads (< 100 ms: less than the VAD's
  ``min_silence_ms``), repeated to at least 60 s: only the 15 s length cap cuts it;
- ``conversational``: silero_test.wav as it is (60 s, 19 speech regions).

Per run (the stream is one SimulEval instance; source = the whole input): text (one output per
word) and speech (one output per chunk, SimulEval's speech timeline) StartOffset, EndOffset, AL,
LAAL and ATD (``benchmarks/tools/simul_latency.py``), NCA (delay = audio sent when the output arrived)
and CA (wall clock); the first speech out after speech onset (onset: the first ``SpeechEvent``
STARTED); per segment the first speech after the segment's start; retractions (a segment whose
joined commit deltas differ from its final text); segments against the offline VAD's (lost,
extra); the server's model time per second of audio (``translate_svc_batch_model_ms`` sum) and
simultaneous steps run/skipped (``translate_svc_simultaneous_steps_total``).

``--load-streams N``: N real-time streams of the conversational input (starts spread over 2 s) in
simultaneous mode on one server: segments and retractions per stream, finals' latency
(``timing.total_ms`` and arrival - end of segment), steps run/skipped.

Output: tables, and a JSON under ``benchmarks/results/`` (git-ignored; command, machine, commit, date).

With real weights (``--serve-args "--device cuda --dtype bfloat16" --model DIR --audio-dir DIR
--no-pin``) the same runs measure the re-translation cost (model ms per audio second, steps
skipped); random weights give no stable prefixes, so their commit figures mean nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import platform
import shlex
import shutil
import socket
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.tools import simul_latency as sl
from benchmarks.tools.machine import cpu_model, git_state
from benchmarks.tools.report import percentile
from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL
from translate_svc.model_api.requests import UNIT_MS
from translate_svc.settings import LimitsSettings

logger = logging.getLogger("benchmarks.tools.simultaneous")

RATE = 16000
CHUNK_MS = 20
CHUNK_SAMPLES = RATE * CHUNK_MS // 1000
RESULTS = REPO / "benchmarks" / "results"
TARGET = "spa"
#: the server's default speech threshold: ``limits.simultaneous_min_chunk_ms`` (400 ms) in units of 20 ms
MIN_UNITS = LimitsSettings().simultaneous_min_chunk_ms // UNIT_MS
#: the issue's targets (continuous speech, simultaneous mode)
TARGET_FIRST_SPEECH_MS = 2500.0
TARGET_END_OFFSET_MS = 2000.0

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 160)


# -- pure: the continuous input -----------------------------------------------------------------


def cut_regions(audio: np.ndarray, spans: Sequence[tuple[int, int]], trim: int = 0) -> list[np.ndarray]:
    """The ``spans`` (sample ranges, in order, not overlapping) of ``audio``, each shortened by
    ``trim`` samples at both ends (a span too short for that is left out)."""
    if trim < 0:
        raise ValueError(f"trim must be >= 0, got {trim}")
    out = []
    prev_end = 0
    for start, end in spans:
        if not prev_end <= start < end <= len(audio):
            raise ValueError(f"span {(start, end)} is out of order or outside the audio")
        prev_end = end
        if end - start > 2 * trim:
            out.append(audio[start + trim : end - trim])
    return out


def continuous(regions: Sequence[np.ndarray], min_samples: int) -> np.ndarray:
    """``regions`` back to back, no pause between them, cycled from the first again until at least
    ``min_samples`` long (stopping at a region's end)."""
    if not any(len(r) for r in regions):
        raise ValueError("no audio to build from")
    out: list[np.ndarray] = []
    total = 0
    while total < min_samples:
        for r in regions:
            out.append(r)
            total += len(r)
            if total >= min_samples:
                break
    return np.concatenate(out)


# -- pure: an event log -> SimulEval instances --------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One event a stream received: a ``commit`` (text delta, speech chunk) or a segment's
    ``result`` (its whole text and speech). ``elapsed_ms``: wall ms since the stream's first audio
    was sent; ``sent_ms``: audio sent by then; ``source_ms``: the server's audio received (commits)."""

    kind: str  # "commit" | "result"
    # (``elapsed_ms`` is counted from when the stream's audio began: its first 20 ms chunk is sent
    # at 20 ms, when it would be complete live, so at real time elapsed = audio time)
    segment_id: int
    elapsed_ms: float
    sent_ms: float
    text: str
    speech_ms: float = 0.0
    source_ms: float | None = None
    final: bool = False
    speech_in_commits: bool = False
    start_ms: int = 0
    end_ms: int = 0
    total_ms: float = 0.0
    vad_wait_ms: float = 0.0


@dataclass
class Instance:
    """The outputs a listener gets, in order: per text word and per speech chunk, its delay (NCA),
    its time (CA), and for speech its duration; and the segment each came from."""

    text_delays: list[float] = field(default_factory=list)
    text_times: list[float] = field(default_factory=list)
    speech_delays: list[float] = field(default_factory=list)
    speech_times: list[float] = field(default_factory=list)
    speech_durations: list[float] = field(default_factory=list)
    speech_segments: list[int] = field(default_factory=list)


def listener_outputs(log: Sequence[Output], source_ms: float) -> Instance:
    """What a listener gets: a segment's commits where it had any, else its result (segment mode,
    or a simultaneous segment that committed nothing before its end). NCA delay = the audio sent
    when the output arrived (at most ``source_ms``); CA = the arrival time. Outputs are monotone
    in arrival order (the log's order)."""
    committed = {o.segment_id for o in log if o.kind == "commit"}
    inst = Instance()
    for o in log:
        if (o.kind == "commit") != (o.segment_id in committed):
            continue  # a result whose words came in commits, or (never) a stray commit
        delay = min(o.sent_ms, source_ms)
        for _ in o.text.split():
            inst.text_delays.append(delay)
            inst.text_times.append(o.elapsed_ms)
        if o.speech_ms > 0 and not (o.kind == "result" and o.speech_in_commits):
            inst.speech_delays.append(delay)
            inst.speech_times.append(o.elapsed_ms)
            inst.speech_durations.append(o.speech_ms)
            inst.speech_segments.append(o.segment_id)
    return inst


def latency(inst: Instance, source_ms: float) -> dict[str, dict[str, float]]:
    """SimulEval's scores of the instance: ``{"text": {...}, "speech": {...}}`` with NCA and CA
    names (``AL``, ``AL_CA``...); a side with no output is empty."""
    out: dict[str, dict[str, float]] = {"text": {}, "speech": {}}
    for ca in (False, True):
        t = sl.text_latency(inst.text_delays, inst.text_times, source_ms, computation_aware=ca)
        if t is not None:
            out["text"].update(t.named())
        s = sl.speech_latency(
            inst.speech_delays, inst.speech_times, inst.speech_durations, source_ms, computation_aware=ca
        )
        if s is not None:
            out["speech"].update(s.named())
    return out


def retractions(log: Sequence[Output]) -> list[int]:
    """Segments whose commits, joined, are not their final text (committed words taken back)."""
    joined: dict[int, str] = {}
    for o in log:
        if o.kind == "commit":
            joined[o.segment_id] = joined.get(o.segment_id, "") + o.text
    finals = {o.segment_id: o.text for o in log if o.kind == "result"}
    return sorted(s for s, text in joined.items() if " ".join(text.split()) != " ".join(finals.get(s, "").split()))


def first_speech_after(inst: Instance, onset_ms: float) -> float | None:
    """Wall ms from ``onset_ms`` (audio time = wall time at real time) to the first speech out."""
    return inst.speech_times[0] - onset_ms if inst.speech_times else None


def per_segment_first_speech(log: Sequence[Output], inst: Instance) -> list[float]:
    """Per segment: its first speech out minus its start (wall time = audio time at real time)."""
    starts = {o.segment_id: o.start_ms for o in log if o.kind == "result"}
    seen: dict[int, float] = {}
    for seg, t in zip(inst.speech_segments, inst.speech_times, strict=True):
        seen.setdefault(seg, t)
    return [t - starts[s] for s, t in seen.items() if s in starts]


def parse_metrics(text: str) -> dict[str, float]:
    """The figures this benchmark reads from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {
        "batch_model_ms_sum": 0.0,
        "batch_count": 0.0,
        "steps_run": 0.0,
        "steps_skipped": 0.0,
        "step_audio_s": 0.0,
        "audio_received_s": 0.0,
    }
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "translate_svc_batch_model_ms_sum":
                out["batch_model_ms_sum"] += s.value
            elif s.name == "translate_svc_batch_model_ms_count":
                out["batch_count"] += s.value
            elif s.name == "translate_svc_simultaneous_steps_total":
                key = "steps_run" if s.labels.get("outcome") == "run" else "steps_skipped"
                out[key] += s.value
            elif s.name == "translate_svc_simultaneous_step_audio_seconds_total":
                out["step_audio_s"] += s.value
            elif s.name == "translate_svc_tenant_audio_seconds_total":
                out["audio_received_s"] += s.value
    return out


def metrics_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def predicted_first_speech(step_ms: int, agreement: int, min_units: int, hold_last_word: bool = True) -> dict[str, int]:
    """The stable translator's policy replayed offline on a segment of open speech: the step (in
    ms of the segment's audio) at which the first words are committed, and the first at which
    speech comes out (``min_units`` new units). Computation, the VAD's onset and pad ignored:
    this is the floor the knobs set, the measurement adds the rest."""
    from translate_svc.model.testing import stable
    from translate_svc.model_api.agreement import AgreementConfig, step_commit
    from translate_svc.model_api.requests import speak_now

    config = AgreementConfig(agreement, hold_last_word)
    committed: tuple[int, ...] = ()
    recent: tuple[tuple[int, ...], ...] = ()
    out: dict[str, int] = {}
    for k in range(1, 200):
        t = k * step_ms
        own = stable.hypothesis(t * RATE // 1000)
        ids = (*committed, *own[len(committed) :])
        done = step_commit(committed, recent, ids, stable.word_starts, config)
        recent = (*recent, ids)[-(agreement - 1) :] if agreement > 1 else ()
        if done and "text_ms" not in out:
            out["text_ms"] = t
        if speak_now(stable.UNITS_PER_WORD * len(done), min_units, False):
            out["speech_ms"] = t
            out["words_spoken"] = len(done)
            return out
        committed = done
    return out


# -- impure: audio and the offline VAD -----------------------------------------------------------


AUDIO_DIR = [SHARED_AUDIO]  # --audio-dir


def load(name: str) -> np.ndarray:
    from translate_svc.client_cli.decode import load_pcm16k

    return load_pcm16k(AUDIO_DIR[0] / name)


def offline_segments(pcm: np.ndarray) -> list[tuple[int, int, str]]:
    """What the server's VAD cuts from this audio (same silero model, same segmenter, defaults):
    ``(start_sample, end_sample, end reason)``."""
    from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmentReady
    from translate_svc.vad.silero import SileroVad

    x = pcm.astype(np.float32) / 32768.0
    vad = SileroVad()
    state = vad.new_state()
    seg = Segmenter(SegmenterConfig())
    events = seg.push(x, vad.probabilities(state, x))
    seg.push(np.zeros(0, np.float32), vad.finish(state))
    events += seg.finish()
    return [(e.start_sample, e.end_sample, e.reason.value) for e in events if isinstance(e, SegmentReady)]


def build_inputs(min_s: float) -> dict[str, np.ndarray]:
    """The two inputs (module docstring). Continuous: the server VAD's segments of each file, their
    30 ms pads cut to 15 ms (so a joint is at most 30 ms of pad, and the silero context at a joint
    never looks like 100 ms of silence: checked by ``offline_segments`` in every run)."""
    regions = []
    for pcm in map(load, INPUT_FILES):
        regions += cut_regions(pcm, [(a, b) for a, b, _ in offline_segments(pcm)], trim=JOINT_TRIM)
    return {"continuous": continuous(regions, int(min_s * RATE)), "conversational": load("silero_test.wav")}


#: samples cut from each end of a padded VAD segment when joining (15 ms of its 30 ms pad)
JOINT_TRIM = 240


INPUT_FILES = ("silero_test.wav", "jfk.flac")


# -- impure: a server, a stream -----------------------------------------------------------------


#: serve's flags after --model: the stable translator unless --serve-args says otherwise
SERVE_ARGS = ["--test-translator", "stable"]
#: --pin: server on core 0, this process on core 1 (None: no pinning)
PIN: list[str | None] = ["0"]


def start_server(log_path: Path, model: Path, cap_ms: int | None = None) -> tuple[Any, int, int]:
    from benchmarks.tools.frontend import SERVE, Server, pinned

    with socket.socket() as sock:  # serve cannot tell a metrics port 0 picked: pick one here
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    env = dict(os.environ, TRANSLATE_SVC_SERVER__METRICS_PORT=str(free))
    if cap_ms is not None:  # a simultaneous stream's segment cap (issue 46); 60000: as before it
        env["TRANSLATE_SVC_LIMITS__SIMULTANEOUS_MAX_SEGMENT_MS"] = str(cap_ms)
    serve = str(SERVE) if SERVE.exists() else shutil.which("translate-svc") or "translate-svc"  # a GPU box: no .venv
    cmd = pinned(PIN[0], [serve, "serve", "--model", str(model), "--port", "0", *SERVE_ARGS])
    server = Server(cmd, env, log_path)
    try:
        from translate_svc.cli import ready_file

        info = ready_file.wait(server.ready_file, server.proc, 120)
        server.port = info.port
        if info.metrics_port is None:
            raise RuntimeError("the server's ready file has no metrics_port")
        metrics_port = info.metrics_port
    except BaseException:
        server.stop()
        raise
    assert server.port is not None
    return server, server.port, int(metrics_port)


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return parse_metrics(r.read().decode())


@dataclass
class StreamLog:
    outputs: list[Output] = field(default_factory=list)
    onset_ms: float | None = None
    max_send_lag_ms: float = 0.0
    error: str | None = None


async def play(client: Any, pcm: np.ndarray, simul: tuple[int, int] | None, delay_s: float = 0.0) -> StreamLog:
    """One stream at real time; every commit and result logged (see ``Output``)."""
    from translate_svc.client.types import Commit, Segment, SimultaneousOptions, SpeechEvent, SpeechEventType

    await asyncio.sleep(delay_s)
    log = StreamLog()
    loop = asyncio.get_running_loop()
    sent = 0
    t0 = 0.0
    options = SimultaneousOptions(*simul) if simul else False
    async with client.stream(targets=TARGET, simultaneous=options, speech=True) as s:

        async def send() -> None:
            nonlocal sent, t0
            t0 = loop.time()
            for i in range(0, len(pcm), CHUNK_SAMPLES):
                due = t0 + (i + CHUNK_SAMPLES) / RATE  # a chunk goes when it would be complete live
                now = loop.time()
                if due > now:
                    await asyncio.sleep(due - now)
                else:
                    log.max_send_lag_ms = max(log.max_send_lag_ms, (now - due) * 1000)
                chunk = pcm[i : i + CHUNK_SAMPLES]
                await s.send(chunk)
                sent += len(chunk)
            await s.close()

        sender = asyncio.create_task(send())
        try:
            async for ev in s:
                el = (loop.time() - t0) * 1000
                sent_ms = sent * 1000 / RATE
                if isinstance(ev, Commit):
                    log.outputs.append(
                        Output(
                            "commit", ev.segment_id, el, sent_ms, ev.text,
                            ev.translation.duration_s * 1000, ev.source_ms, ev.final,
                        )
                    )  # fmt: skip
                elif isinstance(ev, Segment):
                    tr = next((t for t in ev.translations if t.target == TARGET), None)
                    log.outputs.append(
                        Output(
                            "result", ev.segment_id, el, sent_ms, tr.text if tr else "",
                            tr.duration_s * 1000 if tr else 0.0, None, True, ev.speech_in_commits,
                            ev.start_ms, ev.end_ms, ev.timing.total_ms, ev.timing.vad_wait_ms,
                        )
                    )  # fmt: skip
                elif isinstance(ev, SpeechEvent) and ev.type == SpeechEventType.STARTED and log.onset_ms is None:
                    log.onset_ms = float(ev.offset_ms)
        except Exception as e:
            log.error = f"{type(e).__name__}: {e}"
        await sender
    return log


# -- a run -------------------------------------------------------------------------------------


def parse_mode(mode: str) -> tuple[str, tuple[int, int] | None]:
    """``segment`` or ``simul:STEP_MS:AGREEMENT[:CAP_MS]`` -> (name, options)."""
    if mode == "segment":
        return mode, None
    parts = mode.split(":")
    if parts[0] != "simul" or len(parts) not in (3, 4):
        raise typer.BadParameter(
            f"mode {mode!r}: use segment or simul:STEP_MS:AGREEMENT[:CAP_MS]", param_hint="--modes"
        )
    return mode, (int(parts[1]), int(parts[2]))


def mode_cap(mode: str) -> int | None:
    """A mode's server ``limits.simultaneous_max_segment_ms`` (``simul:...:CAP_MS``; None: the
    server's default). 60000 lets only ``vad.max_segment_ms`` (15 s) cut: the cost before issue 46."""
    parts = mode.split(":")
    return int(parts[3]) if len(parts) == 4 else None


def summarize(log: StreamLog, source_ms: float, expected: list[tuple[int, int, str]]) -> dict[str, Any]:
    from translate_svc.vad.segmenter import samples_to_ms

    inst = listener_outputs(log.outputs, source_ms)
    results = [o for o in log.outputs if o.kind == "result"]
    got = [(o.start_ms, o.end_ms) for o in results]
    want = [(samples_to_ms(a), samples_to_ms(b)) for a, b, _ in expected]
    onset = log.onset_ms if log.onset_ms is not None else (results[0].start_ms if results else 0.0)
    per_seg = per_segment_first_speech(log.outputs, inst)
    raw = {
        "finals_total_ms": [o.total_ms for o in results],
        "finals_after_end_ms": [o.elapsed_ms - o.end_ms for o in results],
    }
    return {
        "raw": raw,
        "latency": latency(inst, source_ms),
        "onset_ms": onset,
        "first_speech_after_onset_ms": first_speech_after(inst, onset),
        "first_text_after_onset_ms": inst.text_times[0] - onset if inst.text_times else None,
        "segment_first_speech_ms": _dist(per_seg),
        "segments": len(results),
        "segments_expected": len(want),
        "segments_match_offline_vad": got == want,
        "commits": sum(o.kind == "commit" for o in log.outputs),
        "speech_chunks": len(inst.speech_durations),
        "words": len(inst.text_delays),
        "retracted_segments": retractions(log.outputs),
        "finals_total_ms": _dist(raw["finals_total_ms"]),
        "finals_after_end_ms": _dist(raw["finals_after_end_ms"]),
        "max_send_lag_ms": log.max_send_lag_ms,
        "error": log.error,
    }


def _dist(xs: Sequence[float]) -> dict[str, float | None]:
    if not xs:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    return {"n": len(xs), "p50": percentile(xs, 50), "p95": percentile(xs, 95), "max": max(xs)}


async def _run_streams(port: int, pcm: np.ndarray, simul: tuple[int, int] | None, n: int) -> list[StreamLog]:
    from translate_svc.client.aio import AsyncTranslateClient

    async with AsyncTranslateClient(f"127.0.0.1:{port}") as client:
        return await asyncio.gather(*(play(client, pcm, simul, 2.0 * i / n if n > 1 else 0.0) for i in range(n)))


def one_run(name: str, pcm: np.ndarray, mode: str, n: int, model: Path, tag: str) -> dict[str, Any]:
    _, simul = parse_mode(mode)
    log_path = RESULTS / f"{tag}-{name}-{mode.replace(':', '_')}-{n}.server.log"
    server, port, mport = start_server(log_path, model, mode_cap(mode))
    try:
        before = scrape(mport)
        t = time.monotonic()
        logs = asyncio.run(_run_streams(port, pcm, simul, n))
        wall = time.monotonic() - t
        delta = metrics_delta(before, scrape(mport))
    finally:
        server.stop()
    source_ms = len(pcm) * 1000 / RATE
    expected = EXPECTED[name]
    streams = [summarize(lg, source_ms, expected) for lg in logs]
    audio_s = n * source_ms / 1000
    return {
        "input": name,
        "mode": mode,
        "streams": n,
        "source_ms": source_ms,
        "wall_s": wall,
        "server_log": str(log_path.relative_to(REPO)),
        "metrics": delta,
        "model_ms_per_audio_s": delta["batch_model_ms_sum"] / audio_s,
        "policy_floor": predicted_first_speech(*simul, MIN_UNITS) if simul else None,
        "batches_per_audio_s": delta["batch_count"] / audio_s,
        # the server's own counters: audio its steps re-translated per second of audio it received
        "re_translated_per_audio_s": delta["step_audio_s"] / delta["audio_received_s"]
        if delta["audio_received_s"]
        else None,
        "per_stream": streams,
        "logs": [[asdict(o) for o in lg.outputs] for lg in logs] if n == 1 else None,
    }


EXPECTED: dict[str, list[tuple[int, int, str]]] = {}


# -- tables ------------------------------------------------------------------------------------


def _f(x: float | None, nd: int = 0) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def latency_table(runs: Sequence[dict[str, Any]], side: str) -> Table:
    names = ["StartOffset", "EndOffset", "AL", "LAAL", "ATD"]
    t = Table(title=f"{side} output latency, ms (NCA / CA)")
    for col in ("input", "mode", *names):
        t.add_column(col, justify="right" if col in names else "left")
    for r in runs:
        lat = r["per_stream"][0]["latency"][side]
        t.add_row(r["input"], r["mode"], *(f"{_f(lat.get(k))} / {_f(lat.get(k + '_CA'))}" for k in names))
    return t


def summary_table(runs: Sequence[dict[str, Any]]) -> Table:
    t = Table(title="per run")
    cols = (
        "input", "mode", "first text / speech after onset ms (policy floor)", "segment first speech p50/max ms",
        "segments (VAD match)",
        "commits", "retracted", "model ms / audio s", "steps run / skipped", "re-translated s / audio s",
        "finals total_ms p50/p95",
    )  # fmt: skip
    for c in cols:
        t.add_column(c)
    for r in runs:
        s = r["per_stream"][0]
        sf = s["segment_first_speech_ms"]
        m = r["metrics"]
        floor = r["policy_floor"] or {}
        first = f"{_f(s['first_text_after_onset_ms'])} / {_f(s['first_speech_after_onset_ms'])}"
        if floor:
            first += f" ({floor.get('text_ms')} / {floor.get('speech_ms')})"
        t.add_row(
            r["input"], r["mode"], first, f"{_f(sf['p50'])} / {_f(sf['max'])}",
            f"{s['segments']}/{s['segments_expected']} ({'yes' if s['segments_match_offline_vad'] else 'NO'})",
            str(s["commits"]), str(len(s["retracted_segments"])), _f(r["model_ms_per_audio_s"], 2),
            f"{m['steps_run']:.0f} / {m['steps_skipped']:.0f}", _f(r["re_translated_per_audio_s"], 2),
            f"{_f(s['finals_total_ms']['p50'])} / {_f(s['finals_total_ms']['p95'])}",
        )  # fmt: skip
    return t


def load_summary(r: dict[str, Any]) -> dict[str, Any]:
    ss = r["per_stream"]
    totals = [x for s in ss for x in _values(s, "finals_total_ms")]
    return {
        "streams": r["streams"],
        "streams_with_error": sum(s["error"] is not None for s in ss),
        "streams_segments_match_offline_vad": sum(s["segments_match_offline_vad"] for s in ss),
        "segments": sum(s["segments"] for s in ss),
        "segments_expected": sum(s["segments_expected"] for s in ss),
        "retracted_segments": sum(len(s["retracted_segments"]) for s in ss),
        "finals_total_ms": _dist(totals),
        "finals_after_end_ms": _dist([x for s in ss for x in _values(s, "finals_after_end_ms")]),
        "first_speech_after_onset_ms": _dist(
            [s["first_speech_after_onset_ms"] for s in ss if s["first_speech_after_onset_ms"] is not None]
        ),
        "steps_run": r["metrics"]["steps_run"],
        "steps_skipped": r["metrics"]["steps_skipped"],
        "model_ms_per_audio_s": r["model_ms_per_audio_s"],
        "max_send_lag_ms": max(s["max_send_lag_ms"] for s in ss),
    }


def load_table(x: dict[str, Any]) -> Table:
    t = Table(title=f"load: {x['streams']} real-time streams, simultaneous")
    t.add_column("figure")
    t.add_column("value", justify="right")
    d = x["finals_total_ms"]
    e = x["finals_after_end_ms"]
    f = x["first_speech_after_onset_ms"]
    rows = [
        ("streams failed", str(x["streams_with_error"])),
        ("streams whose segments = the offline VAD's", f"{x['streams_segments_match_offline_vad']}/{x['streams']}"),
        ("segments received / expected", f"{x['segments']}/{x['segments_expected']}"),
        ("segments retracted", str(x["retracted_segments"])),
        ("finals timing.total_ms p50 / p95 / max", f"{_f(d['p50'])} / {_f(d['p95'])} / {_f(d['max'])}"),
        ("finals arrival - end_ms p50 / p95 / max", f"{_f(e['p50'])} / {_f(e['p95'])} / {_f(e['max'])}"),
        ("first speech after onset p50 / max", f"{_f(f['p50'])} / {_f(f['max'])}"),
        ("steps run / skipped", f"{x['steps_run']:.0f} / {x['steps_skipped']:.0f}"),
        ("model ms per audio s", _f(x["model_ms_per_audio_s"], 2)),
        ("client's worst send lag ms", _f(x["max_send_lag_ms"])),
    ]
    for row in rows:
        t.add_row(*row)
    return t


def _values(s: dict[str, Any], key: str) -> list[float]:
    return list(s["raw"][key])


# -- the command -------------------------------------------------------------------------------


@app.command()
def main(
    inputs: Annotated[str, typer.Option(help="comma list: continuous, conversational")] = "continuous,conversational",
    modes: Annotated[str, typer.Option(help="comma list: segment, simul:STEP_MS:AGREEMENT")] = "segment,simul:1000:2",
    load_streams: Annotated[int, typer.Option(min=0, help="0: no load run; else N streams (simultaneous)")] = 0,
    load_s: Annotated[float, typer.Option(min=1, help="load run: seconds of the conversational input")] = 60.0,
    load_mode: Annotated[str, typer.Option(help="load run's mode")] = "simul:1000:2",
    min_continuous_s: Annotated[float, typer.Option(min=1)] = 60.0,
    input_s: Annotated[
        float, typer.Option(min=0, help="cut every input to this many seconds (0: whole; a smoke test)")
    ] = 0.0,
    model: Annotated[Path, typer.Option(help="the test checkpoint")] = TEST_MODEL,
    serve_args: Annotated[
        str, typer.Option(help="serve's flags besides --model/--port (GPU: '--device cuda --dtype bfloat16')")
    ] = "--test-translator stable",
    pin: Annotated[bool, typer.Option(help="server on core 0, this client on core 1")] = True,
    audio_dir: Annotated[Path, typer.Option(help="where silero_test.wav and jfk.flac are")] = SHARED_AUDIO,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="default: benchmarks/results/simultaneous-<date>.json")
    ] = None,
) -> None:
    logging.basicConfig(level=logging.WARNING)
    PIN[0] = "0" if pin else None
    if pin and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the server has core 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    SERVE_ARGS[:] = shlex.split(serve_args)
    AUDIO_DIR[0] = audio_dir
    tag = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    audio = build_inputs(min_continuous_s)
    if input_s:
        audio = {k: v[: int(input_s * RATE)] for k, v in audio.items()}
    for name, pcm in audio.items():
        EXPECTED[name] = offline_segments(pcm)
    desc = {
        name: {
            "seconds": len(pcm) / RATE,
            "offline_vad_segments": len(EXPECTED[name]),
            "end_reasons": sorted({r for *_, r in EXPECTED[name]}),
        }
        for name, pcm in audio.items()
    }
    console.print(f"inputs: {json.dumps(desc)}")
    runs = []
    for name in [x for x in inputs.split(",") if x]:
        for mode in [x for x in modes.split(",") if x]:
            console.print(f"run: {name} {mode} ({len(audio[name]) / RATE:.1f} s at real time)")
            runs.append(one_run(name, audio[name], mode, 1, model, tag))
    load = None
    if load_streams:
        pcm = audio["conversational"][: int(load_s * RATE)]
        EXPECTED["load"] = offline_segments(pcm)
        console.print(f"load run: {load_streams} streams, {len(pcm) / RATE:.1f} s, {load_mode}")
        r = one_run("load", pcm, load_mode, load_streams, model, tag)
        load = {"run": r, "summary": load_summary(r)}
    if runs:
        console.print(summary_table(runs))
        console.print(latency_table(runs, "text"))
        console.print(latency_table(runs, "speech"))
    if load:
        console.print(load_table(load["summary"]))
    doc = {
        "command": " ".join(["python -m benchmarks.tools.simultaneous", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": cpu_model()},
        "git": git_state(),
        "inputs": desc,
        "runs": runs,
        "load": load,
    }
    path = json_out or RESULTS / f"simultaneous-{tag}.json"
    path.write_text(json.dumps(doc, indent=1, default=str))
    console.print(f"wrote {path}")


if __name__ == "__main__":
    app()
