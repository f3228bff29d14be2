"""``python -m translate_svc.cli``: the ``translate-svc`` console script."""

from translate_svc.cli import app

app()
