"""Tests of the whole service as a client sees it, end to end: no one room owns what they check."""
