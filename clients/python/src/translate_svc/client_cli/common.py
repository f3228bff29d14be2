"""What every client command shares: exit codes, the consoles, one-line errors, and the run wrapper.

Everything the server or the model says (messages, transcripts, translations) and every name the
user chose (file names) is printed as rich ``Text`` or through consoles with markup and emoji off:
``[/x]`` or ``:smile:`` are shown as they are, never read as markup. Imports only light modules
(typer, rich): ``translate-svc --help`` loads this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, NoReturn

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:
    from translate_svc.client import TranslateError

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONNECT: Final = 3
EXIT_AUTH: Final = 4
EXIT_INTERRUPTED: Final = 130

NOISE_WARNING: Final = "test model (random weights): every text and sound below is noise"

_WIDTH = None if sys.stdout.isatty() else 150  # logs and CI: no 80-column squeeze
#: results and tables (stdout)
out = Console(markup=False, emoji=False, highlight=False, width=_WIDTH)
#: errors, warnings, progress (stderr)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)
#: the operator commands' own messages, with markup (stdout)
console = Console(width=_WIDTH)


class CliError(Exception):
    """A mistake or failure reported as one line, with the exit code it ends the command with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(text: str | None) -> str:
    """Server or model text for a one-line message: newlines and control characters become spaces."""
    text = text or ""
    return _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\t", " ")).strip()


def error_line(message: str) -> None:
    err.print(Text.assemble(("error: ", "bold red"), one_line(message)), soft_wrap=True)


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), one_line(message)), soft_wrap=True)


def note(message: str, style: str = "dim") -> None:
    err.print(Text(message, style=style), soft_wrap=True)


def from_status(e: TranslateError, server: str) -> CliError:
    """A failed call -> the one-line message and exit code the CLI documents."""
    import grpc

    from translate_svc.client import ListenEndedError, StreamEndedError, StreamResumeError

    msg = one_line(e.message) or e.code.name
    if isinstance(e, StreamEndedError):  # the stream ran, and what arrived was written: 1, whatever the code
        return CliError(f"stream ended: {e.reason.value} ({e.code.name}) — {msg}", EXIT_FAILED)
    if isinstance(e, ListenEndedError):  # the listen ran, and what arrived was written: 1, whatever the code
        return CliError(f"listen ended: {e.reason.value} ({e.code.name}) — {msg}", EXIT_FAILED)
    if isinstance(e, StreamResumeError):
        return CliError(f"lost the connection to {server} and no server took the stream over: {msg}", EXIT_CONNECT)
    if e.code is grpc.StatusCode.UNAVAILABLE:
        return CliError(f"cannot connect to {server}: {msg}", EXIT_CONNECT)
    if e.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return CliError(f"{server} refused the credentials ({e.code.name}): {msg}", EXIT_AUTH)
    if e.code is grpc.StatusCode.INVALID_ARGUMENT:
        return CliError(f"the server refused the request: {msg}", EXIT_USAGE)
    if e.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"no answer from {server} in time (raise --timeout): {msg}", EXIT_FAILED)
    return CliError(f"{e.code.name}: {msg}", EXIT_FAILED)


def run_client(run: Callable[[], int], server: str, on_interrupt: Callable[[], int] | None = None) -> NoReturn:
    """Run a client command: every failure becomes one line on stderr and a documented exit code.

    Ctrl-C is Python's ``KeyboardInterrupt``: a CLI started with SIGINT ignored (a background job of
    a script) keeps it ignored, as POSIX programs do; the caller chose that.
    """
    from translate_svc.client import TranslateError

    if not os.environ.get("TRANSLATE_SVC_DEBUG"):
        # the SDK logs each retry and resume; the CLI reports the outcome in one line instead
        logging.getLogger("translate_svc.client").setLevel(logging.CRITICAL)
    try:
        code = run()
    except KeyboardInterrupt:
        code = on_interrupt() if on_interrupt is not None else EXIT_INTERRUPTED
        if on_interrupt is None:
            note("interrupted: nothing written", "yellow")
    except CliError as e:
        error_line(e.message)
        code = e.code
    except TranslateError as e:
        ce = from_status(e, server)
        error_line(ce.message)
        code = ce.code
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILED
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        error_line(f"cannot use{where}: {e.strerror or e}")
        code = EXIT_USAGE
    except Exception as e:
        if os.environ.get("TRANSLATE_SVC_DEBUG"):
            raise
        error_line(f"unexpected {type(e).__name__}: {e} (a bug: TRANSLATE_SVC_DEBUG=1 shows the traceback)")
        code = EXIT_FAILED
    raise typer.Exit(code)


async def send_and_read(send: Awaitable[None], read: Awaitable[None]) -> None:
    """Run a stream's sender and reader together. The reader's failure (the server's status) wins
    over the sender's (which only sees that the stream closed or ended): the reader is let finish
    then, so it sees every result and the ``StreamEnd`` before the error."""
    from translate_svc.client import StreamClosedError, StreamEndedError

    sender = asyncio.ensure_future(send)
    reader = asyncio.ensure_future(read)
    try:
        done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_EXCEPTION)
        failed = reader.exception() if reader in done else None
        if failed is not None:
            raise failed
        failed = sender.exception() if sender in done else None
        if failed is not None:
            if isinstance(failed, StreamClosedError | StreamEndedError):
                await reader
            raise failed
        await reader
        await sender
    finally:
        for t in (sender, reader):
            t.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)
