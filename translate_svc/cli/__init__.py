"""translate-svc: the command line (typer). ``HELP`` below is ``translate-svc --help``."""

# The package by audience: operator.py (serve, the model commands) reaches the server
# through translate_svc.app; translate.py, text.py, stream.py and languages.py are clients of the SDK only.
# Each command module imports light modules only; its work loads when it runs (a fast --help).

import typer

from translate_svc.cli import bench, languages, operator, phone_config, stream, text, translate

# Help texts are not wrapped in the source: rich wraps them to the terminal. A prose paragraph is one
# logical line; only an indented block (an example, a JSON shape) keeps its line breaks
# (tests/unit/test_cli_help.py).
HELP = (
    "Speech translation on SeamlessM4T v2: serve it (serve, and the model commands), "
    "or call a server (translate, text, stream, languages), or size one (bench).\n\n"
    "The client commands speak to a server through the SDK (translate_svc.client). "
    "Connection: --server (env TRANSLATE_SVC_ADDRESS); TLS with --tls, --tls-ca, --tls-cert, --tls-key and "
    "--tls-server-name "
    "(env TRANSLATE_SVC_TLS_CA, _TLS_CERT, _TLS_KEY, _TLS_SERVER_NAME); a bearer token with --token or --token-file "
    "(env TRANSLATE_SVC_TOKEN, TRANSLATE_SVC_TOKEN_FILE).\n\n"
    "Exit codes of the client commands: 0 done; 1 the server failed the call or some segments, "
    "or ended a stream that had started (quota, revoked token, bad audio, a limit: one line names the reason; "
    "outputs are still written); 2 usage or input error (a bad flag, an unreadable, undecodable or empty input, "
    "an unknown language, an output that exists, or a request the server refused as INVALID_ARGUMENT as it opened); "
    "3 cannot connect (server unreachable or unavailable, TLS handshake failed); "
    "4 the server refused the credentials as the call opened (UNAUTHENTICATED, PERMISSION_DENIED); "
    "130 interrupted (Ctrl-C).\n\n"
    "Every error is one line on stderr; set TRANSLATE_SVC_DEBUG=1 for a traceback of an unexpected one."
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)

app.command("serve")(operator.serve)
app.command("translate", help=translate.HELP.replace("[", "\\["))(translate.translate)
app.command("stream", help=stream.HELP.replace("[", "\\["))(stream.stream)
app.command("text", help=text.HELP.replace("[", "\\["))(text.text)
app.command("languages")(languages.languages)
app.command("phone-config", help=phone_config.HELP)(phone_config.phone_config)
app.command("make-test-model")(operator.make_test_model)
app.command("download-model")(operator.download_model)
app.command("make-test-lid-model")(operator.make_test_lid_model)
app.command("download-lid-model")(operator.download_lid_model)
app.command("bench", help=bench.HELP)(bench.bench)

__all__ = ["app"]
