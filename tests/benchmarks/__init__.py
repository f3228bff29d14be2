"""Tests of the benchmarks' tools (benchmarks/tools/): their statistics and a small real run."""
