"""translate_svc's benchmarks, run from the repository root (``python -m benchmarks.tools.<name>``).

``tools/``: what is run again and again (the load generator and its statistics, the front-end
capacity ramp, the soak and its memory probe, the latency of simultaneous mode, the stage profiler,
slow readers, phone calls, rooms, the language identifier's accuracy); ``gpu/``: the GPU runbook
over them. ``studies/``: a cost measured once for a decision (docs/performance.md and
docs/decisions.md cite each with its figures), kept to measure it again.

Results are not kept in git: each command prints its figures and writes its JSON where ``--json``
says (``out/``, git-ignored) or by default into ``benchmarks/results/`` (git-ignored);
docs/performance.md keeps the figures with the command that gives them. A benchmark imports shared
test code from ``tests/support/`` only, never a test module (an import-linter contract, pyproject.toml).
"""
