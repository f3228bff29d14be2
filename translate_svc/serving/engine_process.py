"""The engine process of ``serve --workers N`` (``python -m translate_svc.serving.engine_process``).

It loads and warms the model (``app.build_engine``), then serves the engine to the front-end
workers over a Unix socket (``engine/remote/server.py``) and says it is ready. SIGTERM (from the
supervisor, once every worker has drained) stops it. If the engine fails (its loop or model thread
dies) the process exits with status 1: the supervisor then ends the node (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from translate_svc import logging_setup
from translate_svc.app import build_engine
from translate_svc.engine.remote.server import EngineServer
from translate_svc.observability import tracing
from translate_svc.serving import process

logger = logging.getLogger(__name__)


async def main() -> int:
    settings = process.settings()
    logging_setup.configure(settings.log_level, settings.log_format)
    tracing.setup(os.environ, process="engine")  # its batch spans (OTEL_* as the node's, inherited)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    failed: list[BaseException] = []

    def engine_failed(exc: BaseException) -> None:
        failed.append(exc)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # Ctrl-C reaches the supervisor, which drains first
    engine = build_engine(settings, on_failure=engine_failed)
    await engine.start(warmup=True)
    server = EngineServer(engine)
    await server.start(Path(os.environ[process.ENV_SOCKET]))
    process.ready(pid=os.getpid(), test_model=engine.card.info.is_test_model)
    await stop.wait()
    if failed:
        logger.error("the engine failed (%r); stopping the node's engine process", failed[0])
    await server.stop()
    await engine.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    process.die_with_parent()
    sys.exit(asyncio.run(main()))
