"""Prometheus metrics. Process-global collectors (prometheus_client's own registry); thread-safe.

With ``serve --workers N`` every process of the node (the engine process and each front-end worker)
writes its values under ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen
by that variable when this module is first imported), and the supervisor serves one aggregate
(``serve_aggregate``): counters and histograms are summed over the processes, dead ones included;
the active-streams gauge over the live ones. ``translate_svc_streams_started_total`` keeps one
series per front-end process (its ``process`` label), so the spread of streams over workers shows.

``/metrics`` is served on the process's event loop by ``metrics_http`` (imported only when served),
not by prometheus_client's thread-per-connection ``start_http_server`` (security finding N15).
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from translate_svc.types import BatchStats, SegmentResult

_MS = (10, 25, 50, 100, 250, 500, 1000, 2000, 4000, 8000, 16000, 32000)

STREAMS_ACTIVE = Gauge(
    "translate_svc_streams_active",
    "live streams in progress, every door (gRPC and Riva streams, OpenAI realtime sessions, phone calls); "
    "room listeners are translate_svc_room_listeners",
    multiprocess_mode="livesum",
)
STREAMS_STARTED = Counter(
    "translate_svc_streams_started_total", "live streams admitted (every door), by front-end process", ["process"]
)
#: this process's name in ``STREAMS_STARTED`` (``main``, or a worker's name: ``set_process``)
_process = "main"
SEGMENTS = Counter("translate_svc_segments_total", "segment results by status", ["status"])
#: segments of background jobs finished and stored (``jobs/``; a resumed job counts only those it redid none of)
JOB_SEGMENTS = Counter("translate_svc_job_segments_total", "background jobs' segments finished and stored")
SEGMENT_TOTAL_MS = Histogram("translate_svc_segment_latency_ms", "segment closed -> result ready (ms)", buckets=_MS)
QUEUE_MS = Histogram("translate_svc_queue_wait_ms", "segment wait for the model (ms)", buckets=_MS)
BATCH_SIZE = Histogram(
    "translate_svc_batch_size", "segments per model batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
BATCH_MS = Histogram("translate_svc_batch_model_ms", "model time per batch (ms)", buckets=_MS)
BATCH_PADDED_AUDIO_S = Histogram(
    "translate_svc_batch_padded_audio_seconds", "padded audio seconds per batch", buckets=(1, 5, 15, 30, 60, 120, 240)
)

COLD_SHAPES = Counter(
    "translate_svc_model_cold_shapes_total",
    "tensor shapes a model stage first met after the warm-up (each costs a kernel build or choice on the request "
    "that meets it; stays at 0 on a warmed server whose shapes repeat)",
    ["stage"],
)
CAPTURE_FAILURES = Counter(
    "translate_svc_model_capture_failures_total",
    "buckets of a model stage whose CUDA graph capture failed at the warm-up: they run eagerly (one kernel "
    "launch each from the host instead of one graph launch), the server serves on",
    ["stage"],
)
GRAPH_MISSES = Counter(
    "translate_svc_model_graph_misses_total",
    "calls of a model stage whose bucket the warm-up did not capture (on CUDA they run eagerly: one kernel "
    "launch each from the host instead of one graph launch; stays at 0 on a warmed server)",
    ["stage"],
)
WIDTH_GUESS_MISSES = Counter(
    "translate_svc_model_width_guess_misses_total",
    "groups of rows a model stage made twice because the width it guessed on the host was short (a second "
    "read of the device and a second run of that part)",
    ["stage"],
)
DECODE_POOL_ROWS = Gauge(
    "translate_svc_decode_pool_rows",
    "rows in the steps core's running decode now (engine.core=steps), by state: decoding in a slot, or "
    "waiting for one (admitted; live rows first)",
    ["state"],
    multiprocess_mode="livesum",
)
DECODE_ROWS_YIELDED = Counter(
    "translate_svc_decode_rows_yielded_total",
    "background rows (a job's segments) that gave their decode slot to a live row in a full pool; each decodes "
    "again from its first token (a rate that keeps up says the pool, model.decode_slots, is too small for the "
    "live load)",
)

TEXT_ROWS = Counter(
    "translate_svc_text_decoder_rows_total",
    "text decoder rows run: one per segment and language (the transcript's included)",
)

VAD_STREAMS_PER_CALL = Histogram(
    "translate_svc_vad_streams_per_call",
    "streams scored together in one VAD model call batch",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


# Usage by tenant. The label's values come only from the tokens file (``default`` for tokens that
# name no tenant, and on a server without tokens), never from a caller.
TENANT_AUDIO_S = Counter("translate_svc_tenant_audio_seconds_total", "audio received, by tenant", ["tenant"])
TENANT_SPEECH_S = Counter(
    "translate_svc_tenant_speech_seconds_total", "translated speech sent (all targets), by tenant", ["tenant"]
)
TENANT_SEGMENTS = Counter(
    "translate_svc_tenant_segments_total", "segment results, by tenant and status", ["tenant", "status"]
)
TENANT_TEXT_CHARS = Counter(
    "translate_svc_tenant_text_characters_total",
    "text characters, by tenant and direction: in (TranslateText's texts), out (translated text sent)",
    ["tenant", "direction"],
)
TENANT_CALLS = Counter(
    "translate_svc_tenant_calls_total",
    "calls ended (stream: StreamingTranslate and the realtime doors; translate: Translate), by final status",
    ["tenant", "method", "code"],
)


TOKENS_FILE_OK = Gauge(
    "translate_svc_tokens_file_ok",
    "1 while the tokens file in use is the one on disk; 0 while a file that cannot be used (unreadable, "
    "empty, a bad line) is on disk and the last good set is kept: tokens removed since are NOT revoked",
    multiprocess_mode="livemin",
)
TOKENS_RELOADS = Counter("translate_svc_tokens_reloads_total", "tokens file reloads, by outcome", ["outcome"])


PACKETS = Counter(
    "translate_svc_packets_total",
    "AudioPackets the reorder window put back in order (reordered) or dropped (duplicate, late)",
    ["outcome"],
)


CONCEALED_S = Counter(
    "translate_svc_audio_concealed_seconds_total",
    "Audio of lost Opus packets that libopus concealed (PLC, in-band FEC) instead of silence",
)


STALL_CLOSES = Counter(
    "translate_svc_stall_closes_total",
    "segments closed because their sender stopped sending mid-speech (limits.stall_close_ms)",
)


#: the phone door: what a caller hears, and when
PHONE_LAG_S = Histogram(
    "translate_svc_phone_ear_voice_lag_seconds",
    "end of a segment's source speech -> the carrier played its translation (mark acknowledged)",
    ["carrier"],
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 32),
)
PHONE_CLEARS = Counter(
    "translate_svc_phone_backlog_clears_total", "translated speech cleared past phone.max_backlog_s", ["carrier"]
)
PHONE_PARTNER_TIMEOUTS = Counter(
    "translate_svc_phone_partner_timeouts_total",
    "two-party legs ended because the other leg did not join within phone.partner_timeout_s",
    ["carrier"],
)
PHONE_PAIR_LOST = Counter(
    "translate_svc_phone_pair_lost_total",
    "two-party messages (speech, voice, marks) a leg could not pass to the other leg: the cluster store failed",
)
PHONE_FRAME_LATE_S = Histogram(
    "translate_svc_phone_frame_lateness_seconds",
    "AudioSocket: a paced 20 ms frame sent this long after its slot",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
)


def phone_lag(carrier: str, seconds: float) -> None:
    PHONE_LAG_S.labels(carrier).observe(seconds)


def phone_cleared(carrier: str) -> None:
    PHONE_CLEARS.labels(carrier).inc()


def phone_partner_timeout(carrier: str) -> None:
    PHONE_PARTNER_TIMEOUTS.labels(carrier).inc()


def phone_pair_lost(n: int) -> None:
    PHONE_PAIR_LOST.inc(n)


def phone_frame_late(seconds: float) -> None:
    PHONE_FRAME_LATE_S.observe(max(0.0, seconds))


def stall_closed() -> None:
    STALL_CLOSES.inc()


MUTED_KEPT = Counter(
    "translate_svc_streams_muted_kept_total",
    "times a configured stream that sent nothing for limits.idle_timeout_s was kept open because its "
    "client still answers pings (a muted speaker; each keeps it another idle_timeout_s)",
)


def muted_kept() -> None:
    MUTED_KEPT.inc()


UNREAD_HELD = Counter(
    "translate_svc_streams_held_unread_total",
    "times a stream stopped reading its client's requests because the client left "
    "limits.max_unread_results events unread (update answers, captions, commits, notices); it reads "
    "again once the client does",
)


def unread_held() -> None:
    UNREAD_HELD.inc()


EAGER_ENDS = Counter(
    "translate_svc_eager_ends_total",
    "eager ends of turn (vad.eager_threshold): a paused segment translated before its pause closed it, by "
    "outcome: kept (the pause closed it, the result was ready), unfinished (closed before the work was done: "
    "sent again as a final), resumed (speech went on: dropped), changed (closed otherwise: dropped), refused "
    "(the engine was behind: not started)",
    ["outcome"],
)


def eager_end(outcome: str) -> None:
    EAGER_ENDS.labels(outcome).inc()


SIMULTANEOUS_STEPS = Counter(
    "translate_svc_simultaneous_steps_total",
    "simultaneous mode: translations of open speech due every step_ms, by outcome (run, or skipped "
    "because the engine or the reader was behind: the words are then committed later)",
    ["outcome"],
)


SIMULTANEOUS_STEP_AUDIO_S = Counter(
    "translate_svc_simultaneous_step_audio_seconds_total",
    "simultaneous mode: audio seconds the steps translated (each step re-translates its open segment "
    "from the start; finals not counted): the mode's cost, beside translate_svc_tenant_audio_seconds_total",
)


OPTIONAL_OVER_BUDGET = Counter(
    "translate_svc_optional_over_budget_total",
    "live captions and simultaneous steps skipped because one alone is over engine.optional_batch_audio_s "
    "(its text rows x its seconds): a long open segment with many targets gets no more of them",
)
FINAL_OPTIONAL_WAIT_MS = Histogram(
    "translate_svc_final_optional_wait_ms",
    "of a final segment's queue wait: the model time of the optional batch (captions, simultaneous steps) "
    "it waited behind (0: none); bounded by engine.optional_batch_audio_s",
    buckets=(0, *_MS),
)


def optional_over_budget() -> None:
    OPTIONAL_OVER_BUDGET.inc()


def final_optional_wait(ms: float) -> None:
    FINAL_OPTIONAL_WAIT_MS.observe(ms)


def simultaneous_step(ran: bool) -> None:
    SIMULTANEOUS_STEPS.labels("run" if ran else "skipped").inc()


def simultaneous_step_audio(seconds: float) -> None:
    """A step ran over ``seconds`` of open speech (from its segment's start)."""
    SIMULTANEOUS_STEP_AUDIO_S.inc(seconds)


def stream_packets(reordered: int, duplicate: int, late: int, concealed_ms: int = 0) -> None:
    for outcome, n in (("reordered", reordered), ("duplicate", duplicate), ("late", late)):
        if n:
            PACKETS.labels(outcome).inc(n)
    if concealed_ms:
        CONCEALED_S.inc(concealed_ms / 1000)


def tokens_file(ok: bool) -> None:
    TOKENS_FILE_OK.set(1 if ok else 0)
    TOKENS_RELOADS.labels("loaded" if ok else "kept_last_good").inc()


def tenant_audio(tenant: str, seconds: float) -> None:
    TENANT_AUDIO_S.labels(tenant).inc(seconds)


def tenant_call(tenant: str, method: str, code: str) -> None:
    TENANT_CALLS.labels(tenant, method, code).inc()


def observe_vad_call(streams: int) -> None:
    VAD_STREAMS_PER_CALL.observe(streams)


def observe_batch(stats: BatchStats) -> None:
    BATCH_SIZE.observe(stats.size)
    BATCH_MS.observe(stats.model_ms)
    BATCH_PADDED_AUDIO_S.observe(stats.padded_audio_s)
    TEXT_ROWS.inc(stats.text_rows)
    for q in stats.queue_ms:
        QUEUE_MS.observe(q)


def cold_shape(stage: str) -> None:
    COLD_SHAPES.labels(stage).inc()


def capture_failed(stage: str) -> None:
    CAPTURE_FAILURES.labels(stage).inc()


def graph_missed(stage: str) -> None:
    GRAPH_MISSES.labels(stage).inc()


def width_guess_missed(stage: str, groups: int) -> None:
    WIDTH_GUESS_MISSES.labels(stage).inc(groups)


def decode_pool(decoding: int, waiting: int) -> None:
    DECODE_POOL_ROWS.labels("decoding").set(decoding)
    DECODE_POOL_ROWS.labels("waiting").set(waiting)


def rows_yielded(n: int) -> None:
    DECODE_ROWS_YIELDED.inc(n)


def set_process(name: str) -> None:
    global _process
    _process = name


def stream_started() -> None:
    STREAMS_ACTIVE.inc()
    STREAMS_STARTED.labels(_process).inc()


def stream_ended() -> None:
    STREAMS_ACTIVE.dec()


def observe_segment(result: SegmentResult, tenant: str) -> None:
    status = "OK" if result.error is None else result.error.code
    SEGMENTS.labels(status).inc()
    SEGMENT_TOTAL_MS.observe(result.timing.total_ms)
    TENANT_SEGMENTS.labels(tenant, status).inc()
    speech_s = sum(len(t.audio) / t.sample_rate_hz for t in result.translations if t.audio is not None)
    if speech_s:
        TENANT_SPEECH_S.labels(tenant).inc(speech_s)
    chars = sum(len(t.text) for t in result.translations)
    if chars:
        TENANT_TEXT_CHARS.labels(tenant, "out").inc(chars)


def tenant_text_in(tenant: str, chars: int) -> None:
    TENANT_TEXT_CHARS.labels(tenant, "in").inc(chars)


def serve_metrics(
    port: int, host: str = "0.0.0.0", *, idle_s: float | None = None, max_connections: int | None = None
) -> int:
    """Expose /metrics over HTTP on the running event loop (``metrics_http``: no thread per
    connection, a deadline for each request, a cap on connections); returns the port (``port`` 0:
    a free one). Binds before it returns (a port in use raises ``OSError`` here), serves once the
    loop runs on. ``idle_s``, ``max_connections``: ``metrics_http.METRICS_IDLE_S``, ``.METRICS_MAX_CONNECTIONS``."""
    from translate_svc.observability import metrics_http

    return metrics_http.serve(port, host, REGISTRY, idle_s=idle_s, max_connections=max_connections)


def serve_aggregate(port: int, host: str, directory: Path) -> int:
    """Expose /metrics of every process writing under ``directory`` (the supervisor of ``serve
    --workers N``, which records nothing itself) as ``serve_metrics`` does; returns the port
    (``port`` 0: a free one)."""
    from translate_svc.observability import metrics_http

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return metrics_http.serve(port, host, registry, idle_s=None, max_connections=None)


def stop_metrics(port: int) -> None:
    """Stop serving /metrics on ``port`` (``serve_metrics``' answer); nothing if it is not served."""
    from translate_svc.observability import metrics_http

    metrics_http.stop(port)


def process_gone(pid: int, directory: Path) -> None:
    """A process of the node exited: drop its live-only gauges from the aggregate."""
    multiprocess.mark_process_dead(pid, path=str(directory))  # type: ignore[no-untyped-call]


# -- rooms (docs/rooms.md): labels are bounded (a language is a model code, a door a name)
ROOMS = Gauge("translate_svc_rooms", "rooms open now", multiprocess_mode="livesum")
ROOM_LISTENERS = Gauge(
    "translate_svc_room_listeners", "room listeners now, by language", ["language"], multiprocess_mode="livesum"
)
ROOM_FANOUT_BYTES = Counter(
    "translate_svc_room_fanout_bytes_total", "bytes of room output sent to listeners, by door", ["door"]
)
ROOM_DROPPED = Counter(
    "translate_svc_room_dropped_total",
    "room output dropped because a listener was behind (its oldest events, past rooms.listener_queue), by language",
    ["language"],
)
ROOM_LISTENER_DROPPED = Histogram(
    "translate_svc_room_listener_dropped",
    "events dropped for one listener over its call (observed when it leaves)",
    buckets=(0, 1, 4, 16, 64, 256, 1024, 4096),
)
ROOM_RELAY_DROPPED = Counter(
    "translate_svc_room_relay_dropped_total",
    "room store calls (output to other processes, presence) dropped: a speaker's outbox full, or the cluster "
    "store unavailable, by reason",
    ["reason"],
)

ROOM_RENDITIONS = Counter(
    "translate_svc_room_renditions_total",
    "a room speaker's final results spoken again at its listeners' rates, by outcome: made; budget (its "
    "tenant's audio budget could not pay it); busy (the engine's queue had no place); late (not made within "
    "rooms.rendition_wait_s); failed. Those not made reach their listeners at the speaker's rate",
    ["outcome"],
)
TENANT_RENDITION_S = Counter(
    "translate_svc_tenant_rendition_seconds_total",
    "seconds of speech made again at room listeners' rates, drawn from the tenant's audio budget, by tenant",
    ["tenant"],
)


def room_rendition(outcome: str) -> None:
    ROOM_RENDITIONS.labels(outcome).inc()


def tenant_rendition(tenant: str, seconds: float) -> None:
    TENANT_RENDITION_S.labels(tenant).inc(seconds)


def room_relay_dropped(reason: str) -> None:
    ROOM_RELAY_DROPPED.labels(reason).inc()


def room_opened(delta: int) -> None:
    ROOMS.inc(delta)


def room_listener(language: str, delta: int) -> None:
    ROOM_LISTENERS.labels(language).inc(delta)


def room_dropped(language: str, n: int = 1) -> None:
    ROOM_DROPPED.labels(language).inc(n)


def room_listener_left(dropped: int) -> None:
    ROOM_LISTENER_DROPPED.observe(dropped)


def room_sent(door: str, nbytes: int) -> None:
    ROOM_FANOUT_BYTES.labels(door).inc(nbytes)


# Recordings (translate_svc/recordings/). Tenants come from the tokens file only.
RECORDINGS = Counter(
    "translate_svc_recordings_total",
    "recordings finished, by tenant and whether they are complete",
    ["tenant", "complete"],
)
RECORDINGS_INCOMPLETE = Counter(
    "translate_svc_recordings_incomplete_total",
    "recordings ended early, never the call: the writer's queue was full (queue_full), the disk was full "
    "(disk_full), another write error (write_error), or the tenant has no key (no_key)",
    ["reason"],
)
RECORDINGS_DELETED = Counter(
    "translate_svc_recordings_deleted_total", "recordings deleted: past retention (sweeper) or by the API", ["by"]
)

# -- the cluster store (cluster/watch.py): is it up, and how often it changed
CLUSTER_STORE_UP = Gauge(
    "translate_svc_cluster_store_up",
    "1 while this process reaches its cluster store (Redis, or the node's hub), 0 while it is lost (a node: the "
    "lowest of its workers)",
    multiprocess_mode="livemin",
)
CLUSTER_STORE_TRANSITIONS = Counter(
    "translate_svc_cluster_store_transitions_total",
    "the cluster store lost (state=down) or reached again (state=up) after the process started",
    ["state"],
)


def cluster_store_up(up: bool) -> None:
    CLUSTER_STORE_UP.set(1 if up else 0)


def cluster_store_changed(up: bool) -> None:
    CLUSTER_STORE_TRANSITIONS.labels("up" if up else "down").inc()
