"""translate-svc-client: the client commands (translate, text, stream, languages, bench), on the SDK only.

The app is in ``app.py``; this module stays light so that the console script can say which extra
to install when the command line's libraries (typer, rich: the ``cli`` extra) are missing.
"""

from __future__ import annotations

import sys

#: the command line's libraries: ``pip install 'translate-svc-client[cli]'``
_CLI_EXTRA = frozenset({"typer", "click", "rich", "srt", "webvtt", "soxr", "websockets"})


def main() -> None:
    """The ``translate-svc-client`` console script."""
    try:
        from translate_svc.client_cli.app import app
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] not in _CLI_EXTRA:
            raise
        sys.exit(f"translate-svc-client: {e.name} is missing: pip install 'translate-svc-client[cli]'")
    app()
