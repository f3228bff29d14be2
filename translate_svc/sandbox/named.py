"""A function named by its module and name (``Named``), to run in a sandbox process without
importing its module in this one: for work whose modules the server's process must not load (the
speech watermark's detector imports torch, which the front end never does). It pickles as its
name, which the sandbox process looks up (``worker.named_function``) and calls as the call's
function; here it is only a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from translate_svc.sandbox.worker import named_function


@dataclass(frozen=True)
class Named:
    """``module``'s function ``name``, as a sandbox call's function (``Sandbox.run``)."""

    module: str
    name: str

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return named_function, (self.module, self.name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{self.module}.{self.name} runs in a sandbox process only (Sandbox.run), never here")
