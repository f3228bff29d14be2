"""``python -m benchmarks.tools.loadgen``: the command line (``cli.py``)."""

from benchmarks.tools.loadgen.cli import app

if __name__ == "__main__":
    app()
