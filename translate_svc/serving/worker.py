"""A front-end worker process of ``serve --workers N`` (``python -m translate_svc.serving.worker``).

It runs gRPC, decoding, VAD and sessions around a ``RemoteEngine``: it connects to the engine
process first, then listens on the node's port beside the other workers (``SO_REUSEPORT``: the
kernel spreads connections over them), and turns SERVING once every worker of the node has reached
the engine. SIGTERM drains it like a single-process server. If the engine process goes, every live
stream ends at once with UNAVAILABLE (the client resumes from its last final result elsewhere)
and health turns NOT_SERVING; the supervisor then stops the node.

Never imports torch, transformers, ``model/`` or ``app.py`` (import-linter checks it).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from translate_svc import logging_setup
from translate_svc.cluster.choose import open_node_store, open_store, redis_location
from translate_svc.engine.remote.client import ENGINE_GONE, RemoteEngine
from translate_svc.frontend import build_frontend
from translate_svc.glossaries.choose import open_glossaries
from translate_svc.observability import metrics, tracing
from translate_svc.serving import collector, process
from translate_svc.session.tenants.leases import StoreCounters
from translate_svc.transport.host import TranslateServer


async def main() -> None:
    settings = process.settings()
    name = os.environ[process.ENV_WORKER]
    workers = int(os.environ[process.ENV_WORKERS])
    logging_setup.configure(settings.log_level, settings.log_format)
    metrics.set_process(name)
    tracing.setup(os.environ, process=name)  # before the server: it adds the gRPC interceptor
    listeners: list[Callable[[BaseException], None]] = []

    def engine_failed(exc: BaseException) -> None:
        for listener in listeners:
            listener(exc)

    engine = RemoteEngine(name, on_failure=engine_failed)
    await engine.connect(Path(os.environ[process.ENV_SOCKET]))

    async def all_workers_up(warmup: bool) -> None:
        await engine.wait_for_workers(workers)  # health: SERVING only when the whole node is up

    hub = Path(os.environ[process.ENV_CLUSTER])  # the node's cluster hub: the node's caps (and rooms without Redis)
    cluster = open_store(settings.cluster, hub=hub, worker=name)
    node = cluster if settings.cluster.redis_url is None else open_node_store(hub, name)
    # the node's caps in its hub, the tenants' in the cluster store (session/tenants/leases.py)
    counters = StoreCounters(node, cluster, on_loss=settings.cluster.on_redis_loss, own_node=node is not cluster)
    app = build_frontend(
        settings,
        engine,
        all_workers_up,
        engine.close,
        listeners,
        cluster=cluster,
        counters=counters,
        engine_gone=ENGINE_GONE,
        glossaries=open_glossaries(settings, *redis_location(settings.cluster)),  # the node's file, or Redis
    )
    server = TranslateServer(app, reuse_port=True)
    port = await server.start()
    collector.freeze()  # warm: what the worker holds for good leaves every later collection
    collecting = asyncio.create_task(collector.collect_every(), name="collect-garbage")
    process.ready(port=port, pid=os.getpid(), torch="torch" in sys.modules)
    try:
        await server.serve_until_signal()
    finally:
        collecting.cancel()


if __name__ == "__main__":
    process.die_with_parent()
    asyncio.run(main())
