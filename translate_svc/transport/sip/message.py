"""SIP messages (RFC 3261 §7), sans I/O: parsed with strict bounds before anything is kept, and
built for the responses and the few requests a callee sends (BYE).

A message is refused unread past ``max_bytes``, ``MAX_HEADERS`` header lines or
``MAX_LINE_CHARS`` characters a line; a header value may hold no control character but a tab (no
bare CR or LF: §25.1's TEXT-UTF8char; security finding H9, a Call-ID's bare LF forged lines and fields of
the access log); a request must carry Via, From, To, Call-ID and CSeq (§8.1.1), a Call-ID of
§25.1's ``word [ "@" word ]`` of at most ``MAX_CALL_ID_CHARS``, and a CSeq whose method is its
own. ``SipParseError`` says what is wrong in a few words of our own (nothing of the message is
echoed) and whether it was a request we can answer (with 400: never when one of the headers a
response copies holds a control character). Pure and thread-safe.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

#: the header lines of one message, at most
MAX_HEADERS = 64
#: one header line's characters, at most (folded lines counted together)
MAX_LINE_CHARS = 2048
#: a method's characters, at most
MAX_METHOD_CHARS = 32
#: the compact forms (RFC 3261 §7.3.3) of the headers we read
COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
}
REQUIRED = ("via", "from", "to", "call-id", "cseq")
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
#: a control character (RFC 5234's CTL) other than a tab
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
#: RFC 3261 §25.1: callid = word [ "@" word ]
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID = re.compile(rf"{_WORD}(@{_WORD})?")
#: a Call-ID's characters, at most
MAX_CALL_ID_CHARS = 256
#: what our responses and requests say they are
AGENT = "translate-svc"


class SipParseError(Exception):
    """A message we cannot read. ``request``: a request (not an ACK) whose Via, From, To, Call-ID
    and CSeq could be read, so a 400 can reach its sender."""

    def __init__(self, reason: str, request: SipMessage | None = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        #: the request as far as it was read, when a response can be sent for it
        self.request = request
        #: that response's status: 400, or 513 Message Too Large (§21.5.13)
        self.status = status

    @property
    def answerable(self) -> bool:
        return self.request is not None


@dataclass
class SipMessage:
    """A request (``method``, ``uri``) or a response (``status``, ``reason``); header names are
    lower case, compact forms expanded, in the order they came."""

    method: str | None = None
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name: str) -> list[str]:
        """Every value of ``name``, comma-separated values split (Via, Record-Route)."""
        return [part.strip() for k, v in self.headers if k == name for part in _split_commas(v)]

    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("cseq") or "").partition(" ")
        if not number.isdigit() or len(number) > 10:  # below 2**31 (§8.1.1.5)
            raise ValueError("CSeq")
        return int(number), method.strip()

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    def branch(self) -> str:
        """The topmost Via's branch (RFC 3261 §8.1.1.7)."""
        vias = self.all("via")
        return param(vias[0], "branch") or "" if vias else ""

    def from_tag(self) -> str:
        return param(self.get("from") or "", "tag") or ""

    def to_tag(self) -> str:
        return param(self.get("to") or "", "tag") or ""

    def encode(self) -> bytes:
        start = f"{self.method} {self.uri} SIP/2.0" if self.method else f"SIP/2.0 {self.status} {self.reason}"
        lines = [start, *(f"{_title(k)}: {v}" for k, v in self.headers if k != "content-length")]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def _title(name: str) -> str:
    return {"call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate"}.get(
        name, "-".join(p.capitalize() for p in name.split("-"))
    )


def _split_commas(value: str) -> list[str]:
    """A header value split at commas outside quotes and angle brackets."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return parts


def param(value: str, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value (outside its ``<URI>``); None: absent."""
    tail = value.rsplit(">", 1)[-1] if "<" in value else value
    for part in tail.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == name:
            return v.strip()
    return None


def uri_of(value: str) -> str:
    """The URI of a From/To/Contact value (``"Bob" <sip:bob@h>;tag=1`` -> ``sip:bob@h``)."""
    if "<" in value:
        return value.split("<", 1)[1].split(">", 1)[0].strip()
    return value.split(";", 1)[0].strip()


def uri_user(uri: str) -> str:
    """The user part of a SIP URI (``sip:eng-spa@host`` -> ``eng-spa``); empty when none."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    return rest.split("@", 1)[0] if "@" in rest else ""


def uri_host_port(uri: str, default_port: int = 5060) -> tuple[str, int] | None:
    """Where a SIP URI points (host, port); None: not a sip: URI we can reach."""
    if not uri.lower().startswith("sip:"):
        return None
    rest = uri[4:].split(";", 1)[0].split("?", 1)[0]
    hostport = rest.rsplit("@", 1)[-1]
    if hostport.startswith("["):
        host, _, tail = hostport[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    try:
        return host, int(port) if port else default_port
    except ValueError:
        return None


def head_length(data: bytes | bytearray, max_bytes: int) -> int | None:
    """Where the head ends in a stream (the blank line's end); None: not yet within ``max_bytes``.
    Raises SipParseError when ``max_bytes`` hold no whole head."""
    end = data.find(b"\r\n\r\n", 0, max_bytes + 4)
    if end < 0:
        if len(data) >= max_bytes:
            raise SipParseError(f"no end of the message's head within {max_bytes} bytes")
        return None
    return end + 4


def parse(data: bytes, max_bytes: int, *, stream: bool = False, head_only: bool = False) -> SipMessage:
    """One message. ``stream`` (TCP): ``data`` is exactly one message (its head and the body its
    Content-Length says); else (UDP) the datagram, whose Content-Length may not exceed what came."""
    if len(data) > max_bytes:
        why = f"a message over {max_bytes} bytes (sip.max_message_bytes)"
        request = None
        end = data.find(b"\r\n\r\n", 0, max_bytes)
        if end >= 0:  # its head alone may be read, to answer 513
            try:
                read = parse(data[: end + 4], max_bytes, head_only=True)
                request = read if read.is_request and read.method != "ACK" else None
            except SipParseError:
                pass
        raise SipParseError(why, request, 513)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no blank line ends the message's head (truncated?)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("the message's head is not UTF-8") from None
    raw_lines = text.split("\r\n")
    msg = _start_line(raw_lines[0])
    lines: list[str] = []
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()  # a folded line (§7.3.1)
        else:
            lines.append(line)
        if len(lines[-1]) > MAX_LINE_CHARS:
            raise SipParseError(f"a header line over {MAX_LINE_CHARS} characters")
    if len(lines) > MAX_HEADERS:
        raise SipParseError(f"over {MAX_HEADERS} header lines")
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or not _TOKEN.match(name):
            raise SipParseError("a header line is not name: value")
        msg.headers.append((COMPACT.get(name, name), value.strip()))
    controls = {name for name, value in msg.headers if _CONTROL.search(value)}
    complete = msg.is_request and msg.method != "ACK" and all(msg.get(h) for h in REQUIRED)
    answerable = msg if complete and not controls & set(REQUIRED) else None  # (a response copies these)
    if controls:
        raise SipParseError("a header value holds a control character (a bare CR or LF?)", answerable)
    call_id = msg.get("call-id")
    if msg.is_request and call_id and (len(call_id) > MAX_CALL_ID_CHARS or not _CALL_ID.fullmatch(call_id)):
        raise SipParseError(f"the Call-ID is not word[@word] of at most {MAX_CALL_ID_CHARS} characters", answerable)
    length_text = None if head_only else msg.get("content-length")
    if length_text is None:
        if stream and body:
            raise SipParseError("a message over TCP needs Content-Length", answerable)
        length = len(body)
    else:
        if not length_text.isdigit() or len(length_text) > 9:
            raise SipParseError("Content-Length is not a number", answerable)
        length = int(length_text)
        if length > len(body):
            raise SipParseError("Content-Length is larger than the body that came (truncated)", answerable)
    msg.body = body[:length]
    if msg.is_request:
        missing = [h for h in REQUIRED if not msg.get(h)]
        if missing:
            raise SipParseError("missing header: " + ", ".join(missing))
        try:
            _, cseq_method = msg.cseq()
        except ValueError:
            raise SipParseError("CSeq is not <number> <method>", answerable) from None
        if cseq_method != msg.method and not (msg.method == "ACK" and cseq_method == "INVITE"):
            raise SipParseError("CSeq's method is not the request's", answerable)
    elif not msg.get("via") or not msg.get("cseq"):
        raise SipParseError("a response without Via or CSeq")
    return msg


def _start_line(line: str) -> SipMessage:
    if _CONTROL.search(line):
        raise SipParseError("the first line holds a control character (a bare CR or LF?)")
    if line.startswith("SIP/2.0 "):
        _, status, reason = [*line.split(" ", 2), ""][:3]
        if not (len(status) == 3 and status.isdigit()):
            raise SipParseError("a status line without a three-digit status")
        return SipMessage(status=int(status), reason=reason)
    parts = line.split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0":
        raise SipParseError("the first line is neither a SIP/2.0 request nor a response")
    method, uri, _ = parts
    if len(method) > MAX_METHOD_CHARS or not _TOKEN.match(method) or not uri:
        raise SipParseError("the request line's method or URI cannot be read")
    return SipMessage(method=method, uri=uri)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)  # the magic cookie (§8.1.1.7)


def response(
    request: SipMessage,
    status: int,
    reason: str,
    *,
    to_tag: str | None = None,
    extra: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipMessage:
    """A response to ``request`` (§8.2.6): its Vias, From, Call-ID and CSeq copied, its To with
    ``to_tag`` added when it has none."""
    headers = [(k, v) for k, v in request.headers if k == "via"]
    headers.append(("from", request.get("from") or ""))
    to = request.get("to") or ""
    if to_tag and param(to, "tag") is None:
        to += f";tag={to_tag}"
    headers += [("to", to), ("call-id", request.call_id), ("cseq", request.get("cseq") or "")]
    headers += [("server", AGENT), *(extra or [])]
    return SipMessage(status=status, reason=reason, headers=headers, body=body)
