"""A decode pool's slot buffers without a model (model/decode/step.py ``Slots``), for the decode
step's and the read behind's unit tests: ``Slots.allocate`` reads only the decoder's layer count,
attention heads and hidden width, which a stand-in gives."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from translate_svc.model.decode.step import Slots


def fake_slots(slots: int = 3, max_tokens: int = 6, max_frames: int = 4, *, hidden: int = 8) -> Slots:
    """Buffers for ``slots`` rows on the CPU in float32: 2 layers, 2 heads of ``hidden // 2``."""
    attn = SimpleNamespace(num_heads=2, head_dim=hidden // 2)
    decoder = SimpleNamespace(
        layers=[SimpleNamespace(self_attn=attn)] * 2, layer_norm=SimpleNamespace(normalized_shape=(hidden,))
    )
    return Slots.allocate(decoder, slots, max_tokens, max_frames, torch.device("cpu"), torch.float32)
