"""``python -m translate_svc.client_cli``: the ``translate-svc-client`` console script."""

from translate_svc.client_cli import main

main()
