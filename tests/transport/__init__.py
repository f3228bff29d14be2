"""Tests of translate_svc/transport/: what every door shares (tokens, refusals, the ports' homes)."""
