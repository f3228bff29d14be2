"""Tests of translate_svc/engine/: the scheduler, the fair share, the engine, its remote form."""
