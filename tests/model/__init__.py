"""Tests of translate_svc/model/: the runner on the test checkpoint against transformers' own generate."""
