"""What a decode pool's admission writes (model/decode/admission.py ``Admission``): the rows' host
values staged in one upload, then scattered into the slots they were given, whatever the order;
each slot's frames mask, limit, forced length, tokens (padded) and known tokens, and its encoder
output's cross-attention keys and values; the other slots untouched. On the static path the known
tokens are fed by the steps (``known``, a length of 1); eagerly the loop's prefill feeds them.
Stand-in slots and cross-attention projections on the CPU; the decode against ``generate`` is
test_decode_loop.py's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import torch

from tests.support.fake_slots import fake_slots
from translate_svc.model.decode.admission import Admission
from translate_svc.model.decode.step import Weights

pytestmark = pytest.mark.unit

HIDDEN, HEADS, PAD = 8, 2, 1


def weights() -> Weights:
    """Two layers' cross-attention key and value projections (all ``project_cross`` reads)."""
    gen = torch.Generator().manual_seed(5)

    def layer() -> Any:
        k, v = torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN)
        for m in (k, v):
            torch.nn.init.normal_(m.weight, generator=gen)
        return SimpleNamespace(layer=SimpleNamespace(cross_attention=SimpleNamespace(k_proj=k, v_proj=v)), heads=HEADS)

    return cast(Weights, SimpleNamespace(layers=(layer(), layer())))


@pytest.mark.parametrize("static", [True, False])
def test_each_admitted_row_is_written_into_its_own_slot(static: bool) -> None:
    slots = fake_slots(5, max_tokens=6, max_frames=4, hidden=HIDDEN)
    slots.done.fill_(True)
    slots.length.fill_(5)  # what rows before wrote
    before = {f: getattr(slots, f).clone() for f in ("limit", "force_len", "known", "length", "tokens")}
    w = weights()
    adm = Admission(slots, w, static=static, max_tokens=6, pad=PAD, dtype=torch.float32)
    seqs = [(2, 9, 4), (2, 7)]
    dev = adm.staged([3, 0], seqs, limits=[8, 6], forced=[-1, 5], frames=[4, 2])
    enc = torch.randn(2, 4, HIDDEN, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        adm.stage(None, dev, enc)

    for row, slot in enumerate((3, 0)):
        seq = seqs[row]
        assert int(slots.limit[slot]) == (8, 6)[row] and int(slots.force_len[slot]) == (-1, 5)[row]
        assert slots.tokens[slot].tolist() == [*seq, *[PAD] * (7 - len(seq))]
        assert not bool(slots.done[slot])
        own = (4, 2)[row]
        assert torch.equal(torch.isinf(slots.frames_bias[slot]), torch.arange(4) >= own)
        assert int(slots.known[slot]) == (len(seq) if static else 0)
        if static:
            assert int(slots.length[slot]) == 1
        for i, lw in enumerate(w.layers):
            attn = lw.layer.cross_attention
            for kv, proj in enumerate((attn.k_proj, attn.v_proj)):
                want = proj(enc[row]).view(4, HEADS, -1).transpose(0, 1)
                assert torch.allclose(slots.cross_kv[i, slot, kv], want, atol=1e-6)
    for untouched in (1, 2, 4):  # the other slots: as they were, still finished
        assert bool(slots.done[untouched])
        assert all(torch.equal(getattr(slots, f)[untouched], v[untouched]) for f, v in before.items())
        assert not slots.cross_kv[:, untouched].any()
