"""translate-svc: the command line (typer). ``HELP`` below is ``translate-svc --help``."""

# The package by audience: operator.py (serve, the model commands) reaches the server
# through translate_svc.app; the client commands (translate, text, stream, languages, detect, bench) are the
# client distribution's (translate_svc.client_cli, clients/python/), clients of the SDK only.
# Each command module imports light modules only; its work loads when it runs (a fast --help).

import typer

from translate_svc.cli import operator, phone_config, recordings, usage
from translate_svc.client_cli.app import CLIENT_HELP, add_client_commands

# Help texts are not wrapped in the source: rich wraps them to the terminal. A prose paragraph is one
# logical line; only an indented block (an example, a JSON shape) keeps its line breaks
# (tests/cli/test_help.py).
HELP = (
    "Speech translation on SeamlessM4T v2: serve it (serve, and the model commands), "
    "or call a server (translate, text, stream, languages, detect), or size one (bench).\n\n" + CLIENT_HELP
)

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)

app.command("serve")(operator.serve)
add_client_commands(app)  # translate, stream, text, languages, bench: the client distribution's commands
app.command("phone-config", help=phone_config.HELP)(phone_config.phone_config)
app.command("usage", help=usage.HELP)(usage.usage)
app.command("make-test-model")(operator.make_test_model)
app.command("download-model")(operator.download_model)
app.command("make-test-lid-model")(operator.make_test_lid_model)
app.command("download-lid-model")(operator.download_lid_model)
app.add_typer(recordings.app, name="recordings")  # recordings decrypt

__all__ = ["app"]
