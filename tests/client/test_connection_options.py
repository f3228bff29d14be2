"""The clients' connection arguments, written once (issue 58): ``ConnectionOptions`` is what
``AsyncTranslateClient`` and ``TranslateClient`` take as ``connection=``, and its fields are their
keyword arguments, as before; either way gives the same connection."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

import pytest

from translate_svc.client import AsyncTranslateClient, ConnectionOptions, RetryPolicy, TlsOptions, TranslateClient
from translate_svc.client.aio import ConnectionFields

pytestmark = pytest.mark.unit

#: a value other than the default for every field
TLS = {
    "tls": TlsOptions(server_name="svc.example"),
    "token": "t0ken",
    "timeout_s": 7.5,
    "retry": RetryPolicy(max_attempts=2, initial_backoff_s=0.1),
    "max_resumes": 1,
    "keepalive_s": 40.0,
    "keepalive_timeout_s": 4.0,
    "max_message_bytes": 1 << 20,
    "options": [("grpc.primary_user_agent", "test/1")],
    "connections": 3,
    "allow_plaintext_token": True,
    "receive_window_bytes": 4096,
}
#: the same without TLS: the token then travels as call metadata
PLAINTEXT = {**TLS, "tls": None}
TARGETS = ["10.0.0.5:50051", "10.0.0.6:50051"]


def connection(client: AsyncTranslateClient) -> dict[str, Any]:
    """What a client connects with: its addresses, pool, deadlines, retries, resumes, the channel
    arguments, the call metadata and whether its channels are secure."""
    return {
        "addresses": client.addresses,
        "connections": client.connections,
        "timeout_s": client.timeout_s,
        "retry": client.retry,
        "max_resumes": client.max_resumes,
        "channel_options": client._options,
        "metadata": client._metadata,
        "secure": client._credentials is not None,
    }


def test_the_options_object_and_the_keywords_name_the_same_fields() -> None:
    fields = [f.name for f in dataclasses.fields(ConnectionOptions)]
    assert list(typing.get_type_hints(ConnectionFields)) == fields
    assert set(fields) == set(TLS)
    # the two clients take the same arguments
    for cls in (AsyncTranslateClient, TranslateClient):
        params = inspect.signature(cls.__init__).parameters
        assert list(params) == ["self", "targets", "connection", "fields"]
        assert params["fields"].kind is inspect.Parameter.VAR_KEYWORD


@pytest.mark.parametrize("kwargs", [TLS, PLAINTEXT], ids=["tls", "plaintext"])
def test_a_keyword_and_the_options_object_give_the_same_connection(kwargs: dict[str, Any]) -> None:
    options = ConnectionOptions(**kwargs)
    by_keyword = connection(AsyncTranslateClient(TARGETS, **kwargs))
    assert by_keyword != connection(AsyncTranslateClient(TARGETS))  # every field above differs from the default
    assert connection(AsyncTranslateClient(TARGETS, connection=options)) == by_keyword
    with TranslateClient(TARGETS, **kwargs) as a, TranslateClient(TARGETS, connection=options) as b:
        assert connection(a._client) == connection(b._client) == by_keyword
    # the pieces that show each field took effect
    channel = dict(by_keyword["channel_options"])
    assert channel["grpc.max_receive_message_length"] == channel["grpc.max_send_message_length"] == 1 << 20
    assert channel["grpc.keepalive_time_ms"] == 40_000 and channel["grpc.keepalive_timeout_ms"] == 4_000
    assert channel["grpc.http2.lookahead_bytes"] == 4096 and channel["grpc.primary_user_agent"] == "test/1"
    assert by_keyword["connections"] == 3 and by_keyword["max_resumes"] == 1 and by_keyword["timeout_s"] == 7.5
    assert by_keyword["retry"] == RetryPolicy(max_attempts=2, initial_backoff_s=0.1)
    if kwargs["tls"] is None:
        assert by_keyword["metadata"] == (("authorization", "Bearer t0ken"),) and not by_keyword["secure"]
    else:
        assert channel["grpc.ssl_target_name_override"] == "svc.example" and by_keyword["secure"]
        assert by_keyword["metadata"] == ()  # the token rides the TLS channel's call credentials


def test_keywords_given_win_over_the_options_object() -> None:
    shared = ConnectionOptions(timeout_s=5.0, connections=2, token="a")
    client = AsyncTranslateClient("127.0.0.1:1", connection=shared, timeout_s=9.0, token="b")
    assert (client.timeout_s, client.connections, client._metadata) == (9.0, 2, (("authorization", "Bearer b"),))
    with TranslateClient("127.0.0.1:1", connection=shared, connections=4) as blocking:
        assert (blocking._client.timeout_s, blocking._client.connections) == (5.0, 4)
    assert shared == ConnectionOptions(timeout_s=5.0, connections=2, token="a")  # untouched


def test_the_options_object_is_checked_and_frozen() -> None:
    with pytest.raises(ValueError, match="connections must be at least 1"):
        ConnectionOptions(connections=0)
    with pytest.raises(ValueError, match="max_resumes must not be negative"):
        ConnectionOptions(max_resumes=-1)
    with pytest.raises(ValueError, match="connections must be at least 1"):
        AsyncTranslateClient("127.0.0.1:1", connections=0)  # the keyword form: the same check, the same words
    options = ConnectionOptions(options=[("grpc.primary_user_agent", "x")])
    same = ConnectionOptions(options=(("grpc.primary_user_agent", "x"),))
    assert options.options == same.options and options == same and hash(options) == hash(same)  # a list kept as a tuple
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.timeout_s = 1.0  # type: ignore[misc]
    # the token check holds whichever way the token came
    with pytest.raises(ValueError, match=r"in the clear to 10\.0\.0\.5:50051"):
        AsyncTranslateClient(TARGETS, connection=ConnectionOptions(token="secret"))
    with pytest.raises(ValueError, match=r"in the clear to 10\.0\.0\.5:50051"):
        TranslateClient(TARGETS, token="secret")
