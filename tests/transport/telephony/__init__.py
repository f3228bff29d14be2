"""Tests of the telephony floor (translate_svc/transport/telephony/): the call core under the phone
door and SIP (its pure parts, two-party pairs, the mix), and what it does through a carrier."""
