"""What every door shares about one call, whatever its wire: its request id (the caller's
``x-request-id``, or a new one; the same header or metadata key both ways) and its identity in the
access log (``CallInfo``), and how large its messages may be. Door-neutral: no wire library, no
door; each door reads the id from its own wire (``rpc.py``: gRPC metadata; ``openai/door.py``:
an HTTP header) and passes it here. What the gRPC doors share besides is ``rpc.py``; the token
decision ``tokens/``; the doors' one shape ``door.py``."""

from __future__ import annotations

from translate_svc.observability.access import CallInfo, new_request_id
from translate_svc.settings import LimitsSettings

#: the key of a call's request id, both ways: a gRPC metadata key (lowercase) and an HTTP header
#: (whose names are case-insensitive)
REQUEST_ID = "x-request-id"
#: largest request of a call that takes no audio (ListLanguages), and what a stream message may hold
#: besides its audio chunk (the config's terms and candidates, an event's JSON); only Translate
#: takes ``limits.max_message_bytes``
SMALL_MESSAGE_BYTES = 64 * 1024
#: largest ListenRequest: a room name and a participant of at most 64 characters each, a language
LISTEN_REQUEST_BYTES = 1024


def call_info(given: object, method: str, peer: str) -> CallInfo:
    """A call's identity for the access log: its request id (``given``, the caller's, when it is a
    usable string; else a new one), the method and who called."""
    return CallInfo(new_request_id(given if isinstance(given, str) else None), method, peer)


def stream_message_bytes(limits: LimitsSettings) -> int:
    """The largest message of a stream: an audio chunk of ``limits.max_chunk_bytes`` and the rest."""
    return SMALL_MESSAGE_BYTES + limits.max_chunk_bytes


def config_message_bytes(limits: LimitsSettings) -> int:
    """The largest stream message that carries no audio (a config, an update), held to it before
    protobuf parses it: ``SMALL_MESSAGE_BYTES`` and ``limits.max_terms`` terms of
    ``limits.max_term_chars`` characters (4 bytes of UTF-8 each, twice for Riva's
    ``phrase##phrase``, and their framing). At the defaults 156,160 bytes: a config parses in well
    under a millisecond, where 1 MB of small fields (a map's entries above all) took up to 50 ms of
    the event loop (security finding F3). Glossary entries (``limits.max_glossary_entries``) add a phrase
    and a translation of ``limits.max_term_chars`` characters each, and a target language."""
    return SMALL_MESSAGE_BYTES + limits.max_terms * (8 * limits.max_term_chars + 16) + glossary_bytes(limits)


def glossary_bytes(limits: LimitsSettings) -> int:
    """What a request's glossary entries may hold: phrase and translation (4 bytes of UTF-8 a
    character each; Riva's ``phrase##translation`` the same), a target language and framing."""
    return limits.max_glossary_entries * (8 * limits.max_term_chars + 64)


def text_request_bytes(limits: LimitsSettings) -> int:
    """The largest request of texts to translate: each character at most 4 bytes of UTF-8, each
    text a few bytes of framing."""
    return SMALL_MESSAGE_BYTES + 4 * limits.max_text_request_chars + 8 * limits.max_texts + glossary_bytes(limits)
