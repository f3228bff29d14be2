"""A child process of the supervisor: its settings, its name, and how it says it is ready.

The supervisor passes everything through the environment (``ENV_*``): the settings as JSON, the
engine's socket, the metrics directory. A child writes one line to its stdout when it is ready
(its logs go to stderr); the supervisor reads nothing else from it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from typing import Any

from translate_svc.settings import Settings

ENV_SETTINGS = "TRANSLATE_SVC_NODE_SETTINGS"
ENV_SOCKET = "TRANSLATE_SVC_NODE_ENGINE_SOCKET"
ENV_WORKER = "TRANSLATE_SVC_NODE_WORKER"  # name and slot of a worker: "w<slot>"
ENV_WORKERS = "TRANSLATE_SVC_NODE_WORKERS"  # how many workers the node runs
ENV_PARENT = "TRANSLATE_SVC_NODE_PARENT"  # the supervisor's pid
#: the node's cluster hub's Unix socket (``cluster/hub_server.py``): the node's caps, and more without Redis
ENV_CLUSTER = "TRANSLATE_SVC_NODE_CLUSTER_SOCKET"
#: prometheus_client's own variable: every process of the node writes its metrics there
ENV_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_PR_SET_PDEATHSIG = 1


def settings() -> Settings:
    return Settings.model_validate_json(os.environ[ENV_SETTINGS])


def die_with_parent() -> None:
    """SIGTERM this process when the supervisor dies (even SIGKILLed): a worker then drains and the
    engine process stops, instead of serving on, orphaned (Linux; elsewhere the supervisor's
    own exit path is the only one)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(os.environ.get(ENV_PARENT, os.getppid())):
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor died before the prctl took


def ready(**info: Any) -> None:
    """Tell the supervisor this process serves (one JSON line on stdout)."""
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
