"""``translate-svc phone-config twilio|asterisk|audiosocket|sip``: the lines that point a carrier at
this server (TwiML, ``websocket_client.conf`` and the dialplan; for SIP an Asterisk ``pjsip.conf``
endpoint and its dialplan, a Kamailio dispatcher line and the Twilio Elastic SIP trunk's origination
URI), printed for an operator to paste; with ``--sip-user``, the digest credentials of a PBX calling
from outside ``sip.allowed_cidrs``: the SIP password derived from ``--token``, never the token).
``--speed`` sets the call's speaking rate and ``--conversation`` makes it a conversation on one line
where the carrier carries parameters. Pure text: it
imports nothing of the server but the token store's password derivation
(``transport.tokens.sip.sip_password``, imported only for ``--sip-user``) and the rate's check
(``types.check_speed``), and reaches nothing (docs/telephony.md)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode
from xml.sax.saxutils import quoteattr

import typer

HELP = (
    "Print what points a carrier at this server: Twilio's TwiML, Asterisk's websocket_client.conf and "
    "dialplan (chan_websocket), the dialplan line of AudioSocket, or what a PBX or trunk needs to send SIP "
    "calls (sip). Serve with --http-port and TRANSLATE_SVC_PHONE__WEBSOCKET=true (AudioSocket: "
    "TRANSLATE_SVC_PHONE__AUDIOSOCKET_PORT; SIP: --sip-port)."
)
CARRIERS = ("twilio", "asterisk", "audiosocket", "sip")


def render(
    carrier: str,
    base: str,
    source: str,
    target: str,
    token: str | None,
    call: str | None,
    room: str | None = None,
    participant: str | None = None,
    sip_user: str | None = None,
    speed: float | None = None,
    conversation: str | None = None,
) -> str:
    """The carrier's lines for a server at ``base`` (``wss://host:port`` or, AudioSocket,
    ``host:port``); with ``room`` the call speaks into that room (docs/rooms.md); with ``speed``
    the caller hears the translation at that speaking rate (the call parameter ``speed``); with
    ``conversation`` (``eng,spa``) the call is a conversation on one line, in place of the source
    and the target (docs/telephony.md, "A conversation on one line")."""
    if sip_user is not None and (carrier != "sip" or not token):
        raise typer.BadParameter("--sip-user is SIP's digest user: give it with the sip carrier and --token")
    base = base.rstrip("/")
    if participant and not room:
        raise typer.BadParameter("--participant names who speaks in a room: give --room with it")
    if speed is not None:
        from translate_svc.types import OptionError, check_speed

        try:
            check_speed(speed, "--speed")
        except OptionError as e:
            raise typer.BadParameter(str(e), param_hint="--speed") from None
    talk = _conversation(conversation, carrier) if conversation is not None else None
    params = {
        **({"conversation": talk} if talk is not None else {"source": source, "target": target}),
        **({"speed": f"{speed:g}"} if speed is not None else {}),
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
        if speed is not None:
            raise typer.BadParameter(
                "AudioSocket carries no call parameters: set the server's phone.speed "
                f"(TRANSLATE_SVC_PHONE__SPEED={speed:g}) for its calls, or use Asterisk's chan_websocket (asterisk)",
                param_hint="--speed",
            )
        return (
            "; extensions.conf: AudioSocket carries no parameters: the server's phone.source_language and\n"
            f"; phone.target_language apply (here {source} -> {target}); keep the port on a private network\n"
            "exten => 101,1,Answer()\n"
            f" same => n,AudioSocket(${{UUID()}},{base.removeprefix('tcp://')})\n"
        )
    if carrier == "sip":
        return _sip(base, params, _credentials(token, sip_user) if sip_user and token else None)
    raise typer.BadParameter(f"carrier must be one of {', '.join(CARRIERS)}")


def _conversation(conversation: str, carrier: str) -> str:
    """``--conversation``'s languages as the call parameter carries them (``eng,spa``), or why not."""
    langs = [x.strip() for x in conversation.split(",") if x.strip()]
    if len(langs) < 2:
        raise typer.BadParameter(
            "name the conversation's languages, two to four, comma-separated: eng,spa", param_hint="--conversation"
        )
    if carrier == "audiosocket":
        raise typer.BadParameter(
            "AudioSocket carries no call parameters, so its calls cannot be a conversation: use Asterisk's "
            "chan_websocket (asterisk), Twilio or SIP",
            param_hint="--conversation",
        )
    return ",".join(langs)


def _credentials(token: str, user: str) -> tuple[str, str]:
    """A SIP user's digest name and password: the HMAC of the name under the token (the server
    derives the same from its tokens file; the token itself is no SIP password)."""
    from translate_svc.transport.tokens.sip import sip_password

    return user, sip_password(token, user)


def _sip(base: str, params: dict[str, str], credentials: tuple[str, str] | None = None) -> str:
    """A PBX's or trunk's lines for the SIP door at ``base`` (``sip:host:port`` or ``host:port``): the
    languages ride in the dialled user part (``eng-spa``); a two-party call or a room in
    ``X-Translate-*`` headers, which Asterisk adds in a pre-dial handler. With ``credentials`` (a SIP
    user of the tokens file and its password), the endpoint answers the door's digest challenge."""
    hostport = base.removeprefix("sip:")
    talk = params.get("conversation")
    # a conversation rides in its header; the dialled user is then not read as languages
    user = "conversation" if talk is not None else f"{params['source']}-{params['target']}"
    headers = {
        "conversation": "X-Translate-Conversation",
        "speed": "X-Translate-Speed",
        "call": "X-Translate-Call",
        "room": "X-Translate-Room",
        "participant": "X-Translate-Participant",
    }
    extra = [(headers[k], v) for k, v in params.items() if k in headers]
    dial = f"Dial(PJSIP/{user}@translate" + (",,b(translate-headers^s^1))" if extra else ")")
    if credentials is None:
        who = [
            "; pjsip.conf (Asterisk 16+): the translation service as an endpoint; allow the PBX's address in",
            "; the server's sip.allowed_cidrs",
        ]
    else:
        who = [
            "; pjsip.conf (Asterisk 16+): the translation service as an endpoint; the PBX answers the",
            f"; server's digest challenge as SIP user {credentials[0]} (its line in the tokens file: sip_user=).",
            "; Prefer SIP over TLS (the server's sip.tls_port, transport=tls): over UDP or TCP anyone on the",
            "; path reads the call's X-Translate-* headers and can change them",
        ]
    lines = [
        *who,
        "[translate]",
        "type = endpoint",
        "context = from-translate",
        "disallow = all",
        "allow = ulaw,alaw",
        "dtmf_mode = rfc4733",
        "direct_media = no",
        "aors = translate",
        *(["outbound_auth = translate-auth"] if credentials else []),
        "",
        "[translate]",
        "type = aor",
        f"contact = sip:{hostport}",
        "",
        *(
            [
                "[translate-auth]",
                "type = auth",
                "auth_type = userpass",
                f"username = {credentials[0]}",
                f"password = {credentials[1]}",
                "",
            ]
            if credentials
            else []
        ),
        (
            f"; extensions.conf: a conversation in {talk} on one line: each turn heard in the other language"
            if talk is not None
            else f"; extensions.conf: the caller speaks {params['source']}, hears {params['target']}"
        ),
        f"exten => 102,1,{dial}",
    ]
    if extra:
        lines += ["", "[translate-headers]"]
        # a comma in a value is escaped: the dialplan would split Set's argument there
        lines += [
            f"exten => s,{i},Set(PJSIP_HEADER(add,{h})={v.replace(',', chr(92) + ',')})"
            for i, (h, v) in enumerate(extra, 1)
        ]
        lines.append(f"exten => s,{len(extra) + 1},Return()")
    lines += [
        "",
        "; Kamailio dispatcher.list: set 1, this server",
        f"1 sip:{hostport}",
        "",
        *(
            [
                "; Twilio Elastic SIP Trunking: its origination URI cannot add the X-Translate-Conversation header;",
                "; route the trunk through the PBX above, which adds it",
            ]
            if talk is not None
            else [
                "; Twilio Elastic SIP Trunking > Origination URI (add Twilio's signalling ranges to sip.allowed_cidrs)",
                f"sip:{user}@{hostport}",
            ]
        ),
    ]
    return "\n".join(lines) + "\n"


def phone_config(
    carrier: Annotated[str, typer.Argument(help="twilio, asterisk, audiosocket or sip")],
    url: Annotated[
        str,
        typer.Option(
            help="where the carrier reaches this server: wss://host[:port] (AudioSocket: host:port; SIP: host:port)"
        ),
    ],
    source: Annotated[str | None, typer.Option(help="the language spoken on the call (default: eng)")] = None,
    target: Annotated[str | None, typer.Option(help="the language the caller hears (default: spa)")] = None,
    token: Annotated[
        str | None, typer.Option(help="a token with stream, and publish= for --room (Asterisk: sent in the URL)")
    ] = None,
    call: Annotated[str | None, typer.Option(help="two-party: the call id both legs name")] = None,
    room: Annotated[
        str | None, typer.Option(help="speak into this room: its listeners hear the caller in their languages")
    ] = None,
    participant: Annotated[str | None, typer.Option(help="the caller's participant id in the room")] = None,
    sip_user: Annotated[
        str | None,
        typer.Option(
            help="SIP: the digest user (sip_user= of --token's line in the tokens file): prints its password, "
            "derived from the token (the token itself is not the SIP password)"
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="the speaking rate the caller hears, 0.5-2.0 (1: the model's own; default: the server's)"),
    ] = None,
    conversation: Annotated[
        str | None,
        typer.Option(
            help="two to four people on one line, each speaking one of these languages (eng,spa), in place of "
            "--source and --target: each turn is heard in the other party's language"
        ),
    ] = None,
) -> None:
    """Print the carrier's configuration lines."""
    if carrier not in CARRIERS:
        raise typer.BadParameter(f"carrier must be one of {', '.join(CARRIERS)}", param_hint="CARRIER")
    if conversation is not None and (source is not None or target is not None):
        raise typer.BadParameter(
            "a conversation names its languages in place of --source and --target: drop them",
            param_hint="--conversation",
        )
    lines = render(
        carrier, url, source or "eng", target or "spa", token, call, room, participant, sip_user, speed, conversation
    )
    typer.echo(lines, nl=False)
