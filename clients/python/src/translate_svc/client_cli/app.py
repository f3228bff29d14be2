"""The client commands' typer app (translate, text, stream, listen, languages, detect, bench), on the SDK only.

The same commands are part of the server's ``translate-svc`` (``translate_svc.cli`` adds them with
:func:`add_client_commands`); this package is what ``pip install 'translate-svc-client[cli]'`` brings
without the server. Each command module imports light modules only; its work loads when it runs.
"""

import typer

from translate_svc.client_cli import bench, detect, dub, glossaries, jobs, languages, listen, stream, text, translate

#: What the client commands share in ``--help`` (connection, exit codes): the server's
#: ``translate-svc --help`` says it after its own first paragraph.
CLIENT_HELP = (
    "The client commands speak to a server through the SDK (translate_svc.client). "
    "Connection: --server (env TRANSLATE_SVC_ADDRESS); TLS with --tls, --tls-ca, --tls-cert, --tls-key and "
    "--tls-server-name "
    "(env TRANSLATE_SVC_TLS_CA, _TLS_CERT, _TLS_KEY, _TLS_SERVER_NAME); a bearer token with --token or --token-file "
    "(env TRANSLATE_SVC_TOKEN, TRANSLATE_SVC_TOKEN_FILE).\n\n"
    "Exit codes of the client commands: 0 done; 1 the server failed the call or some segments, or ended a "
    "stream or a listen that had started (quota, revoked token, bad audio, a limit: one line names the reason; "
    "outputs are still written); 2 usage or input error (a bad flag, an unreadable, undecodable or empty input, "
    "an unknown language, an output that exists, or a request the server refused as INVALID_ARGUMENT as it opened); "
    "3 cannot connect (server unreachable or unavailable, TLS handshake failed); "
    "4 the server refused the credentials as the call opened (UNAUTHENTICATED, PERMISSION_DENIED); "
    "130 interrupted (Ctrl-C).\n\n"
    "Every error is one line on stderr; set TRANSLATE_SVC_DEBUG=1 for a traceback of an unexpected one."
)

HELP = (
    "Call a translate-svc server: translate, text, stream, listen, languages, detect; or size one: bench.\n\n"
    + CLIENT_HELP
)


def add_client_commands(app: typer.Typer) -> None:
    """Register translate, stream, listen, text, languages, detect, bench, glossaries, job and dub on ``app``
    (this one, or the server's)."""
    app.command("translate", help=translate.HELP.replace("[", "\\["))(translate.translate)
    app.command("stream", help=stream.HELP.replace("[", "\\["))(stream.stream)
    app.command("listen", help=listen.HELP.replace("[", "\\["))(listen.listen)
    app.command("text", help=text.HELP.replace("[", "\\["))(text.text)
    app.command("languages")(languages.languages)
    app.command("detect", help=detect.HELP)(detect.detect)
    app.command("bench", help=bench.HELP.replace("[", "\\["))(bench.bench)
    app.add_typer(glossaries.app, name="glossaries")
    app.add_typer(jobs.app, name="job")
    app.command("dub", help=dub.HELP)(dub.dub)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
add_client_commands(app)

__all__ = ["CLIENT_HELP", "HELP", "add_client_commands", "app"]
