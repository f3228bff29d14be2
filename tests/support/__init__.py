"""What the tests and the benchmarks share: the server helpers, fakes, fake carriers and attack probes."""
