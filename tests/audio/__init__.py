"""Tests of translate_svc/audio/: decoding, containers, Opus, resampling."""
