"""What a decode pool's admission writes (model/decode/loop.py ``DecodeLoop.admit`` decides which
rows join which slots; this module moves their values there).

The rows' host values (slot, limit, forced length, own frames, known tokens, then the tokens) are
staged in one pinned buffer and copied to the device in one non-blocking copy (model/capture.py
``HostStaging``: no upload waits for an earlier copy), then scattered into their slots on the
device with their frames' mask and their encoder outputs' cross-attention keys and values: no
read of the device, a captured graph per (rows, frames) bucket on CUDA (``stage``). Model thread
only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from translate_svc.model.capture import GraphedStage, HostStaging
from translate_svc.model.decode import step as decode_step
from translate_svc.model.decode.step import Slots, Weights

#: the columns of an admission's staged values (``Admission.staged``): the slot, the sequence's
#: limit, the forced length, the row's own encoder frames, its known tokens, then the tokens
SLOT, LIMIT, FORCED, FRAMES, KNOWN, TOKENS = range(6)


class Admission:
    """A pool's admissions' host staging and device work (see the module docstring). ``static``:
    the known tokens are fed by the steps (``Slots.known``); else by the loop's prefill."""

    def __init__(
        self, buffers: Slots, weights: Weights, *, static: bool, max_tokens: int, pad: int, dtype: torch.dtype
    ) -> None:
        self.buffers, self.weights = buffers, weights
        self.static, self.max_tokens, self.pad, self.dtype = static, max_tokens, pad, dtype
        self.device = buffers.tokens.device
        self._staging = HostStaging(torch.long, self.device)
        #: the device work, a graph per (rows, frames) bucket on CUDA (model/capture.py)
        self.stage = GraphedStage("decode.admit", self._write, self.device)

    def staged(
        self,
        slots: Sequence[int],
        seqs: Sequence[Sequence[int]],
        limits: Sequence[int],
        forced: Sequence[int],
        frames: Sequence[int],
    ) -> Tensor:
        """The admitted rows' host values (``SLOT``, ``LIMIT``, ... then the tokens, padded) on the
        device, in one non-blocking copy from a pinned buffer."""

        def fill(host: np.ndarray) -> None:
            host[:, TOKENS:] = self.pad
            for j, seq in enumerate(seqs):
                host[j, :TOKENS] = (slots[j], limits[j], forced[j], frames[j], len(seq))
                host[j, TOKENS : TOKENS + len(seq)] = seq

        return self._staging.upload((len(seqs), TOKENS + self.max_tokens + 1), fill)

    def _write(self, dev: Tensor, enc: Tensor) -> tuple[Tensor, ...]:
        """What an admission writes on the device (``stage``): each row's values (``dev``, staged)
        scattered into its slot, its frames' mask, and its encoder output's cross-attention keys
        and values. No read of the device."""
        buf = self.buffers
        index = dev[:, SLOT]
        own = dev[:, FRAMES].unsqueeze(1)
        padding = torch.arange(buf.frames_bias.shape[1], device=self.device).unsqueeze(0) >= own
        bias = torch.zeros_like(padding, dtype=self.dtype).masked_fill_(padding, float("-inf"))
        buf.frames_bias.index_copy_(0, index, bias)
        buf.limit.index_copy_(0, index, dev[:, LIMIT])
        buf.force_len.index_copy_(0, index, dev[:, FORCED])
        buf.tokens.index_copy_(0, index, dev[:, TOKENS:])
        buf.done.index_fill_(0, index, False)
        if self.static:  # the known tokens are fed by the steps (``Slots.known``)
            buf.known.index_copy_(0, index, dev[:, KNOWN])
            buf.length.index_fill_(0, index, 1)
        else:
            buf.known.index_fill_(0, index, 0)
        decode_step.project_cross(self.weights, buf, index, enc)
        return ()
