"""Reading Resemblyzer's ``pretrained.pt`` without torch: a restricted unpickler for torch's legacy
(pre-1.6) serialization, which is what the wheel ships.

The file is five pickles and the raw storages: a magic number, the protocol version, the system
info, the object (tensors as persistent ids ``('storage', type, key, location, numel, view)`` and
``torch._utils._rebuild_tensor_v2`` calls), the storages' keys in order; then each storage as an
int64 element count and its little-endian elements. Only the globals such a state dict needs are
resolved (anything else is refused), so loading it runs no code from the file, unlike
``torch.load`` of an untrusted file. Checked against ``torch.load`` in
``tests/speakers/test_encoder.py``.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "LongStorage": np.int64, "IntStorage": np.int32}


class CheckpointError(ValueError):
    """Not a legacy torch checkpoint of plain tensors."""


class _Storage:
    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        data = self.storage.data
        assert data is not None
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view)


def _rebuild_tensor_v2(
    storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _Tensor:
    return _Tensor(storage, offset, tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        if name not in _DTYPES:
            raise CheckpointError(f"unsupported storage type {name}")
        self.dtype = _DTYPES[name]


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: io.BufferedIOBase, storages: dict[str, _Storage]) -> None:
        super().__init__(f)
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"the checkpoint names {module}.{name}, which a plain state dict never does")

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r:.80}")
        _, kind, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(kind.dtype, int(numel))
        return self._storages[key]


def load_state(path: Path) -> dict[str, Any]:
    """The checkpoint's object with every tensor as a numpy array (float32 stays float32)."""
    with open(path, "rb") as f:
        if pickle.load(f) != _MAGIC:
            raise CheckpointError(f"{path} is not a legacy torch checkpoint")
        pickle.load(f)
        pickle.load(f)
        storages: dict[str, _Storage] = {}
        obj = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (numel,) = struct.unpack("<q", f.read(8))
            st = storages[key]
            raw = f.read(numel * np.dtype(st.dtype).itemsize)
            st.data = np.frombuffer(raw, dtype=np.dtype(st.dtype).newbyteorder("<")).astype(st.dtype)
    state: dict[str, Any] = _arrays(obj)
    return state


def _arrays(obj: Any) -> Any:
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_arrays(v) for v in obj)
    return obj
