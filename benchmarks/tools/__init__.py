"""The benchmarks that are run again and again: load generators, the soak, reports, probes.
Each is ``python -m benchmarks.tools.<name>`` from the repository root."""
