"""The SIP door (docs/telephony.md): a SIP trunk, PBX or phone calls the service
straight in, over UDP and TCP, with G.711 RTP media; each call goes through the telephony floor's
call loop (``telephony.loop.PhoneCall``), which the phone door stands on too."""
