"""Load generator and reports for translate_svc (run from the repository root: ``python -m benchmarks.loadgen``)."""
