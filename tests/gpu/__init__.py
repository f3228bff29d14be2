"""Tests that need CUDA (the ``gpu`` marker): skipped, with the reason, on a machine without it;
run on a lent GPU by ``benchmarks/gpu/run.sh tests`` (issue 69)."""
