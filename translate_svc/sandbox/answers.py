"""An answer from a sandbox process, loaded: the pickle it wrote, read by an unpickler that makes
only plain values (``load``).

A sandbox process runs code on untrusted input (FFmpeg's demuxers and decoders, libsndfile, a
parser): a file that took one over could write any pickle as its answer, and ``pickle.loads``
calls whatever the pickle names. So the only names an answer may use are classes whose
construction does nothing but hold values: exceptions, enums and frozen dataclasses of this
package, the builtin value types and exceptions, and numpy's array and dtype rebuilders. Any other
name (``os.system``, ``builtins.eval``, a class with side effects) fails the load with
``UnpicklingError``. Thread-safe (each load has its own unpickler).
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import io
import pickle
from enum import Enum
from typing import Any

_VALUES = frozenset(
    {"bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "range", "set", "slice",
     "str", "tuple"}
)  # fmt: skip
#: numpy's rebuilders of an array, a dtype and a scalar (numpy 1 and numpy 2 names)
_NUMPY = frozenset(
    {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric", "numpy._core.numeric")
        for name in ("_reconstruct", "scalar", "_frombuffer")
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


def _plain(found: object) -> bool:
    """A class whose construction only holds values."""
    if not isinstance(found, type):
        return False
    if issubclass(found, (BaseException, Enum)):
        return True
    params = getattr(found, "__dataclass_params__", None)
    return dataclasses.is_dataclass(found) and params is not None and bool(params.frozen)


class _Plain(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins":
            found = getattr(builtins, name, None)
            if name in _VALUES or (isinstance(found, type) and issubclass(found, BaseException)):
                return found
        elif (module, name) in _NUMPY:
            return getattr(importlib.import_module(module), name)
        elif module == "numpy" and name.startswith("dtypes."):  # numpy 2's dtype classes
            return super().find_class(module, name)
        elif module.split(".", 1)[0] == "translate_svc" and "." not in name:
            found = getattr(importlib.import_module(module), name, None)
            if _plain(found):
                return found
        raise pickle.UnpicklingError(f"an answer may not name {module}.{name}")


def load(data: bytes) -> Any:
    """The value pickled in ``data``, made of plain values only (see the module)."""
    return _Plain(io.BytesIO(data)).load()
