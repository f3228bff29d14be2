"""Load generator: N concurrent real gRPC streams against a translate_svc server.

Run from the repository root. Two ways:

    # in-process (default): a fresh server per config, batching ON vs OFF, every batch recorded
    python -m benchmarks.tools.loadgen --streams 16 --model model_cache/test-model --json out/bench.json
    # an external server (one config, named "target"); with --server-pid its CPU is read from /proc
    python -m benchmarks.tools.loadgen --target 127.0.0.1:50051 --server-pid 1234 --streams 50 --no-saturation

**In-process** (no ``--target``): for each config (batching ON with ``--max-batch-size``/
``--max-wait-ms``, then batching OFF = ``max_batch_size 1``) it starts a fresh ``TranslateServer`` on
127.0.0.1 port 0 in this process (so its ``on_batch`` callback records every batch). Server,
sessions and clients then share one asyncio loop; the model runs on the engine's own model thread
and the VAD on the server's VAD thread, as in the real server.

**External** (``--target host:port``): no server is started; this process only drives the one at
``host:port`` (a config named "target"). Batch statistics cannot be seen from outside: the report
says "not measured" (``null`` in the JSON), never zero. With ``--server-pid`` (a server on this
machine) the server's CPU time (utime + stime from /proc/PID/stat, and by thread name) is read
before, during (every 0.5 s) and after the real-time phase: server cores used and CPU µs per audio
message. This process's own CPU use is reported beside it, to show the client was not the limit
(``benchmarks/tools/frontend.py`` runs the server and this client on separate cores).

Either way the streams are real ``StreamingTranslate`` calls, one gRPC channel per stream, in two
phases:

1. **real time**: N streams, each a real speech file paced at ``--speed`` x real time, starts
   spread uniformly over ``--stagger-s`` (stream i starts at ``i * stagger / N``). When streams
   outnumber files, each further copy of a file starts ``--shift-s`` seconds later into it (and
   wraps), so streams cut different segments: identical copies would repeat every tensor shape and
   flatter per-shape caches. ``--stream-s`` cuts or loops every stream's audio to that length.
   Audio goes as ``--encoding linear16`` (16 kHz mono, ``--chunk-ms`` per message, default 100) or
   ``opus`` (one 20 ms Opus packet per message on the 48 kHz timeline, libopus VoIP mode, 32 kbit/s;
   every clip is encoded once before any stream starts). Per segment: the latency from "audio up to
   ``end_ms`` was sent" to the ``segment`` response, and the server's VAD wait. With
   ``--interim-ms`` (live captions) the streams ask for ``interim`` results, and the report adds the
   first-caption latency per segment. ``--flood-streams K --flood-speed S`` adds K streams sending
   at S x real time beside the N, for as long as the N run; they are reported separately (their
   throughput, how they ended, e.g. RESOURCE_EXHAUSTED, which is allowed and counted).
2. **saturation** (``--no-saturation`` skips it): the same N streams at once, unpaced, in
   ``--saturation-chunk-ms`` chunks (Opus: its 20 ms packets): capacity in audio s / wall s.

Client pacing uses ``asyncio.sleep``, so a paced send is late only when this process's loop is busy
-- ``max_send_lag_ms`` says by how much. Latency is measured against the *scheduled* send time, so
such lateness counts against latency, as it would for a live speaker. Every definition is in
``benchmarks/tools/report.py``.

The package, one job a module: ``options.py`` (what a run is asked, the settings it builds),
``clips.py`` (the audio each stream plays), ``stream.py`` (one client stream), ``phases.py`` (the
load's shapes: real time with floods, saturation), ``cpu.py`` (CPU from ``/proc``), ``runs.py`` (an
in-process server per config or an external one; the run's document), ``render.py`` (the table),
``cli.py`` (the command line); the statistics are ``benchmarks/tools/report.py``.
"""
