"""``translate-svc phone-config twilio|asterisk|audiosocket``: the lines that point a carrier at this
server (TwiML, ``websocket_client.conf`` and the dialplan), printed for an operator to paste.
Pure text: it imports nothing of the server and reaches nothing (docs/telephony.md)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode
from xml.sax.saxutils import quoteattr

import typer

HELP = (
    "Print what points a carrier at this server: Twilio's TwiML, Asterisk's websocket_client.conf and "
    "dialplan (chan_websocket), or the dialplan line of AudioSocket. Serve with --http-port and "
    "TRANSLATE_SVC_PHONE__WEBSOCKET=true (AudioSocket: TRANSLATE_SVC_PHONE__AUDIOSOCKET_PORT)."
)
CARRIERS = ("twilio", "asterisk", "audiosocket")


def render(
    carrier: str,
    base: str,
    source: str,
    target: str,
    token: str | None,
    call: str | None,
    room: str | None = None,
    participant: str | None = None,
) -> str:
    """The carrier's lines for a server at ``base`` (``wss://host:port`` or, AudioSocket,
    ``host:port``); with ``room`` the call speaks into that room (docs/rooms.md)."""
    base = base.rstrip("/")
    if participant and not room:
        raise typer.BadParameter("--participant names who speaks in a room: give --room with it")
    params = {
        "source": source,
        "target": target,
        **({"call": call} if call else {}),
        **({"room": room} if room else {}),
        **({"participant": participant} if participant else {}),
    }
    if carrier == "twilio":
        # Twilio drops a Stream url's query string: the languages go as <Parameter>s; whom the call
        # meets (its room, participant, two-party call) goes in the url's path, which Twilio's
        # signature covers (the start message that carries <Parameter>s is not signed). It sends
        # no token: set phone.twilio_auth_token so its signature is checked
        signed = {k: params.pop(k) for k in ("call", "room", "participant") if k in params}
        path = "".join(f"/{k}={quote(v, safe='')}" for k, v in signed.items())
        lines = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "<Response>",
            "  <Connect>",
            f"    <Stream url={quoteattr(base + '/v1/phone/twilio' + path)}>",
            *(f"      <Parameter name={quoteattr(k)} value={quoteattr(v)} />" for k, v in params.items()),
            "    </Stream>",
            "  </Connect>",
            "</Response>",
        ]
        return "\n".join(lines) + "\n"
    if carrier == "asterisk":
        query = urlencode({**params, **({"token": token} if token else {})})
        return (
            "; websocket_client.conf\n"
            "[translate]\n"
            "type = websocket_client\n"
            f"uri = {base}/v1/phone/asterisk?{query}\n"
            "connection_type = per_call_config\n"
            "\n"
            "; extensions.conf: the caller hears the translation; c() picks the codec (ulaw, alaw, slin, slin16)\n"
            "exten => 100,1,Answer()\n"
            " same => n,Dial(WebSocket/translate/c(ulaw)f(json))\n"
        )
    if carrier == "audiosocket":
        if room:
            raise typer.BadParameter(
                "AudioSocket carries no call parameters, so its calls cannot speak into a room: use Asterisk's "
                "chan_websocket (asterisk) or Twilio",
                param_hint="--room",
            )
        return (
            "; extensions.conf: AudioSocket carries no parameters: the server's phone.source_language and\n"
            f"; phone.target_language apply (here {source} -> {target}); keep the port on a private network\n"
            "exten => 101,1,Answer()\n"
            f" same => n,AudioSocket(${{UUID()}},{base.removeprefix('tcp://')})\n"
        )
    raise typer.BadParameter(f"carrier must be one of {', '.join(CARRIERS)}")


def phone_config(
    carrier: Annotated[str, typer.Argument(help="twilio, asterisk or audiosocket")],
    url: Annotated[
        str, typer.Option(help="where the carrier reaches this server: wss://host[:port] (AudioSocket: host:port)")
    ],
    source: Annotated[str, typer.Option(help="the language spoken on the call")] = "eng",
    target: Annotated[str, typer.Option(help="the language the caller hears")] = "spa",
    token: Annotated[
        str | None, typer.Option(help="a token with stream, and publish= for --room (Asterisk: sent in the URL)")
    ] = None,
    call: Annotated[str | None, typer.Option(help="two-party: the call id both legs name")] = None,
    room: Annotated[
        str | None, typer.Option(help="speak into this room: its listeners hear the caller in their languages")
    ] = None,
    participant: Annotated[str | None, typer.Option(help="the caller's participant id in the room")] = None,
) -> None:
    """Print the carrier's configuration lines."""
    if carrier not in CARRIERS:
        raise typer.BadParameter(f"carrier must be one of {', '.join(CARRIERS)}", param_hint="CARRIER")
    typer.echo(render(carrier, url, source, target, token, call, room, participant), nl=False)
