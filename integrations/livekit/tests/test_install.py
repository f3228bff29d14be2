"""The virtualenv these tests run in (Makefile: one plain pip install of livekit-agents 1.8.9, the
client distribution clients/python and this plugin): the plugin on the client alone, with none of the
server beside it (the tests start servers from the project's virtualenv, TRANSLATE_SVC_SERVER_PYTHON)."""

from __future__ import annotations

import importlib.util
import re
import sysconfig
from importlib.metadata import distribution, version
from pathlib import Path

from google.protobuf import __version__ as protobuf_version

#: modules of the server distribution (and its heavy requirements) that a client environment lacks
SERVER_ONLY = (
    "torch",
    "transformers",
    "onnxruntime",
    "aiortc",
    "translate_svc.app",
    "translate_svc.cli",
    "translate_svc.model",
    "translate_svc.audio",  # the server's own since issue 58 (the client's share is translate_svc.wire)
)


def test_the_plugin_is_installed_on_the_client_alone() -> None:
    assert version("livekit-agents") == "1.8.9"
    assert version("translate-svc-client") == "0.1.0"
    requires = distribution("livekit-plugins-translate-svc").requires or []
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requires}
    assert "translate-svc-client" in names and "translate-svc" not in names  # the client, not the server

    from translate_svc import client

    assert client.__file__ is not None
    assert Path(client.__file__).is_relative_to(sysconfig.get_paths()["purelib"])
    assert [m for m in SERVER_ONLY if importlib.util.find_spec(m) is not None] == []


def test_the_client_stubs_load_under_the_protobuf_livekit_resolved() -> None:
    from translate_svc.api.v1 import translate_pb2

    assert int(protobuf_version.split(".")[0]) >= 5
    request = translate_pb2.StreamingTranslateRequest(audio=b"\x00\x01")
    assert translate_pb2.StreamingTranslateRequest.FromString(request.SerializeToString()) == request
