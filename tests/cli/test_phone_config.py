"""``translate-svc phone-config`` (issue 44): the TwiML parses and points Twilio's Stream at the door
with the call's parameters; Asterisk's lines name the door's path, codec and JSON control."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from translate_svc.cli import app

pytestmark = pytest.mark.unit


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["phone-config", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_twilio_twiml() -> None:
    root = ET.fromstring(run("twilio", "--url", "wss://phone.example.com/", "--target", "fra", "--call", "c1"))
    stream = root.find("./Connect/Stream")
    # whom the call meets goes in the url's path, which Twilio's signature covers (issue 57)
    assert stream is not None and stream.get("url") == "wss://phone.example.com/v1/phone/twilio/call=c1"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"source": "eng", "target": "fra"}


def test_asterisk_and_audiosocket_lines() -> None:
    out = run("asterisk", "--url", "wss://pbx-gw:8080", "--token", "t0k")
    assert "uri = wss://pbx-gw:8080/v1/phone/asterisk?source=eng&target=spa&token=t0k" in out
    assert "Dial(WebSocket/translate/c(ulaw)f(json))" in out and "type = websocket_client" in out
    assert "AudioSocket(${UUID()},10.0.0.5:9092)" in run("audiosocket", "--url", "10.0.0.5:9092")


def test_an_unknown_carrier_is_refused() -> None:
    result = CliRunner().invoke(app, ["phone-config", "vonage", "--url", "wss://x"])
    assert result.exit_code == 2 and "twilio" in result.output


def test_a_room_goes_into_the_carriers_parameters() -> None:
    root = ET.fromstring(run("twilio", "--url", "wss://p.example.com", "--room", "town-hall", "--participant", "mayor"))
    stream = root.find("./Connect/Stream")
    assert stream is not None
    assert stream.get("url") == "wss://p.example.com/v1/phone/twilio/room=town-hall/participant=mayor"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert params == {"source": "eng", "target": "spa"}
    out = run("asterisk", "--url", "wss://pbx-gw:8080", "--room", "town-hall")
    assert "uri = wss://pbx-gw:8080/v1/phone/asterisk?source=eng&target=spa&room=town-hall" in out
    # AudioSocket carries no parameters: a room there is refused, not dropped
    result = CliRunner().invoke(app, ["phone-config", "audiosocket", "--url", "10.0.0.5:9092", "--room", "r"])
    assert result.exit_code == 2 and "AudioSocket" in result.output
    result = CliRunner().invoke(app, ["phone-config", "twilio", "--url", "wss://x", "--participant", "p"])
    assert result.exit_code == 2 and "--room" in result.output


def test_sip_lines_for_a_pbx_a_proxy_and_a_trunk() -> None:
    out = run("sip", "--url", "sip:10.0.0.5:5060", "--target", "fra")
    assert "contact = sip:10.0.0.5:5060" in out and "exten => 102,1,Dial(PJSIP/eng-fra@translate)" in out
    assert "\n1 sip:10.0.0.5:5060\n" in out and "\nsip:eng-fra@10.0.0.5:5060\n" in out
    two_party = run("sip", "--url", "10.0.0.5:5060", "--call", "c1")
    assert "Dial(PJSIP/eng-spa@translate,,b(translate-headers^s^1))" in two_party
    assert "exten => s,1,Set(PJSIP_HEADER(add,X-Translate-Call)=c1)" in two_party
    assert "auth" not in run("sip", "--url", "10.0.0.5:5060")  # an allowed network's PBX: no credentials


def test_sip_digest_credentials_are_the_derived_password_not_the_token() -> None:
    """Issue 68, H5: the SIP password is an HMAC of the SIP user under the token (the server keeps
    its HA1), and the lines say to prefer TLS."""
    from translate_svc.transport.tokens.file import parse_tokens
    from translate_svc.transport.tokens.sip import sip_ha1, sip_password

    out = run("sip", "--url", "10.0.0.5:5060", "--token", "s3cret-token", "--sip-user", "pbx1")
    password = sip_password("s3cret-token", "pbx1")
    assert "s3cret-token" not in out and f"password = {password}\n" in out and "username = pbx1\n" in out
    assert "outbound_auth = translate-auth" in out and "[translate-auth]\ntype = auth" in out and "TLS" in out
    [(_, grant)] = parse_tokens("s3cret-token stream sip_user=pbx1\n", "test")
    assert grant.sip_ha1 == sip_ha1("pbx1", password)  # what the server checks the answer against
    refused = CliRunner().invoke(app, ["phone-config", "sip", "--url", "10.0.0.5:5060", "--sip-user", "pbx1"])
    assert refused.exit_code == 2 and "--token" in refused.output


def test_a_speaking_rate_rides_in_each_carriers_call_parameters() -> None:
    """``--speed`` (issue 90): a <Parameter> for Twilio, the URL's query for Asterisk, an
    X-Translate-Speed header for SIP, each a name the door reads (``call_setup``, the SIP door's
    header map); AudioSocket carries none, so it is refused there naming the server setting; a
    rate out of range is refused naming the flag and the range."""
    from urllib.parse import parse_qs, urlsplit

    from translate_svc.settings import PhoneSettings
    from translate_svc.transport.sip.invite import HEADER_PARAMS
    from translate_svc.transport.telephony.call import call_setup

    root = ET.fromstring(run("twilio", "--url", "wss://p.example.com", "--speed", "1.25"))
    stream = root.find("./Connect/Stream")
    assert stream is not None
    params = {str(p.get("name")): str(p.get("value")) for p in stream.findall("Parameter")}
    assert params == {"source": "eng", "target": "spa", "speed": "1.25"}
    assert call_setup(params, PhoneSettings()).speed == 1.25
    uri = next(
        line for line in run("asterisk", "--url", "wss://gw:8080", "--speed", "0.8").splitlines() if "uri" in line
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(uri.split("= ", 1)[1]).query).items()}
    assert call_setup(query, PhoneSettings()).speed == 0.8
    sip = run("sip", "--url", "sip:10.0.0.5:5060", "--speed", "1.5")
    assert "exten => s,1,Set(PJSIP_HEADER(add,X-Translate-Speed)=1.5)" in sip
    assert HEADER_PARAMS["x-translate-speed"] == "speed"
    refused = CliRunner().invoke(app, ["phone-config", "audiosocket", "--url", "10.0.0.5:9092", "--speed", "1.2"])
    assert refused.exit_code == 2 and "TRANSLATE_SVC_PHONE__SPEED=1.2" in refused.output
    wrong = CliRunner().invoke(app, ["phone-config", "twilio", "--url", "wss://x", "--speed", "3"])
    assert wrong.exit_code == 2 and "0.5" in wrong.output and "2.0" in wrong.output


def test_a_conversation_rides_in_each_carriers_call_parameters() -> None:
    """``--conversation eng,spa`` in place of --source and --target: a <Parameter> for Twilio, the
    URL's query for Asterisk, the X-Translate-Conversation header for SIP (its comma escaped for the
    dialplan; the dialled user then not read as languages), each read by the doors' own parsers
    (``call_setup``, the SIP door's ``invite_params``) as the conversation; AudioSocket carries no
    parameters, and --source beside it is refused, naming what to drop."""
    from urllib.parse import parse_qs, urlsplit

    from translate_svc.settings import PhoneSettings
    from translate_svc.transport.sip.invite import HEADER_PARAMS
    from translate_svc.transport.telephony.call import call_setup

    root = ET.fromstring(run("twilio", "--url", "wss://p.example.com", "--conversation", "eng, spa"))
    stream = root.find("./Connect/Stream")
    assert stream is not None
    params = {str(p.get("name")): str(p.get("value")) for p in stream.findall("Parameter")}
    assert params == {"conversation": "eng,spa"}
    setup = call_setup(params, PhoneSettings())
    assert (setup.conversation, setup.source, setup.target) == (("eng", "spa"), "", "")
    uri = next(
        line
        for line in run("asterisk", "--url", "wss://gw:8080", "--conversation", "eng,spa").splitlines()
        if "uri" in line
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(uri.split("= ", 1)[1]).query).items()}
    assert call_setup(query, PhoneSettings()).conversation == ("eng", "spa")
    sip = run("sip", "--url", "sip:10.0.0.5:5060", "--conversation", "eng,spa")
    assert "exten => s,1,Set(PJSIP_HEADER(add,X-Translate-Conversation)=eng\\,spa)" in sip
    assert "Dial(PJSIP/conversation@translate" in sip and HEADER_PARAMS["x-translate-conversation"] == "conversation"
    for args, said in (
        (["audiosocket", "--url", "10.0.0.5:9092", "--conversation", "eng,spa"], "AudioSocket carries no call"),
        (["twilio", "--url", "wss://x", "--conversation", "eng,spa", "--source", "fra"], "drop them"),
        (["twilio", "--url", "wss://x", "--conversation", "eng"], "two to four"),
    ):
        refused = CliRunner().invoke(app, ["phone-config", *args])
        assert refused.exit_code == 2 and said in " ".join(refused.output.replace("│", " ").split()), refused.output
