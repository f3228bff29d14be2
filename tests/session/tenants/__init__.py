"""Tests of the tenants (translate_svc/session/tenants/): the counters, their leases and the audio budget."""
