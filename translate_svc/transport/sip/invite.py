"""What the door decides about a new INVITE from what it says, before it answers anything but the
caller's credentials (security finding H12: a call naming a room it could not use was answered 100, 180
and 200 and only then ended; now every refusal here is the INVITE's final answer, before 100
Trying). In order: 488 for no SDP offer, or one whose media we do not take (no codec of ours, an
address we do not send to: ``addresses.py``); 400 for an offer we cannot read (``sdp.SdpError``:
its bounds too) and for call parameters we refuse (``X-Translate-*`` headers or the Request-URI's
``<source>-<target>`` user: ``telephony.call.call_setup``; a room's name or participant id, a room in
simultaneous mode); 403 for a room the caller may not publish into. Sans I/O; pure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from translate_svc.errors import InvalidInput
from translate_svc.session.rooms.checks import check_participant, check_room_name, check_speaker
from translate_svc.session.tenants.tenant import RoomRights
from translate_svc.settings import PhoneSettings
from translate_svc.transport.sip import sdp
from translate_svc.transport.sip.addresses import rtp_address
from translate_svc.transport.sip.message import SipMessage, uri_user
from translate_svc.transport.telephony.call import MAX_PARAM_CHARS, CallSetup, call_setup, stream_config
from translate_svc.vad.segmenter import SegmenterConfig

#: the call parameters from headers (RFC 3261 §20: extension headers X-...)
HEADER_PARAMS = {
    "x-translate-source": "source",
    "x-translate-target": "target",
    "x-translate-call": "call",
    "x-translate-room": "room",
    "x-translate-participant": "participant",
    "x-translate-simultaneous": "simultaneous",
    "x-translate-noise-suppression": "noise_suppression",
    "x-translate-speed": "speed",
    "x-translate-conversation": "conversation",
    "x-translate-eagerness": "eagerness",
    "x-translate-voices": "voices",
    "x-translate-speeds": "speeds",
}


@dataclass(frozen=True)
class Refusal:
    """The INVITE's final answer: a status, its reason phrase, and why (our own words)."""

    status: int
    reason: str
    why: str


@dataclass(frozen=True)
class Taken:
    """An INVITE the door goes on with: its offer, the stream we take of it (its address checked),
    its call parameters and what they ask for."""

    offer: sdp.Offer
    chosen: sdp.Chosen
    params: dict[str, str]
    setup: CallSetup


def check_invite(
    invite: SipMessage, *, phone: PhoneSettings, rights: RoomRights, server_host: str, peer: str, vad: SegmenterConfig
) -> Taken | Refusal:
    """The door's decision on ``invite`` from its caller's address (``peer``) and room rights."""
    content_type = (invite.get("content-type") or "").split(";")[0].strip().lower()
    if not invite.body or content_type != "application/sdp":
        return Refusal(488, "Not Acceptable Here", "send an SDP offer (application/sdp) in the INVITE")
    try:
        offer = sdp.parse_offer(invite.body)
        chosen = sdp.choose(offer)
        chosen = dataclasses.replace(chosen, address=rtp_address(chosen.address, server_host=server_host, peer=peer))
    except sdp.NotAcceptable as e:
        return Refusal(488, "Not Acceptable Here", str(e))
    except sdp.SdpError as e:
        return Refusal(400, "Bad Request", str(e))
    try:
        params = call_params(invite)
        setup = call_setup(params, phone)
        if setup.room is not None:
            check_room_name(setup.room.name)
            check_participant(setup.room.participant)
            check_speaker(stream_config(setup, chosen.codec, vad))
    except InvalidInput as e:
        return Refusal(400, "Bad Request", str(e))
    if setup.room is not None and not rights.may_publish(setup.room.name):
        why = "this caller may not publish into the room it names: a SIP user's token needs publish= (or room=) for it"
        return Refusal(403, "Forbidden", why)
    return Taken(offer, chosen, params, setup)


def call_params(invite: SipMessage) -> dict[str, str]:
    """The call's parameters: the ``X-Translate-*`` headers, else the Request-URI's user part
    ``<source>-<target>`` (``sip:eng-spa@host``, for phones that can only dial), else none (the
    phone door's ``phone.source_language`` and ``phone.target_language``)."""
    params: dict[str, str] = {}
    for header, name in HEADER_PARAMS.items():
        value = invite.get(header)
        if value is not None:
            params[name] = value
    user = uri_user(invite.uri)
    named = "source" in params or "target" in params or "conversation" in params
    if not named and user.count("-") == 1 and len(user) <= 2 * MAX_PARAM_CHARS:
        source, target = user.split("-")
        if source.isalpha() and target.isalpha():
            params.update(source=source, target=target)
    return params
