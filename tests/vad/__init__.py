"""Tests of translate_svc/vad/: silero, the VAD worker, the segmenter."""
