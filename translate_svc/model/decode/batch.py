"""The fast runner's decode: a plan's rows through our own decode loop instead of
``generate``, and each row's kept hidden states handed to text-to-unit.

``LoopDecoder.decode`` takes what ``TextDecoder.decode`` takes (encoder rows, their mask, a
``RowPlan``, what inputs said) and runs the plan's passes (transcripts first where terms need them)
through one ``DecodeLoop`` (model/decode/loop.py): rows join the pool as slots free up and leave the
step they finish. It returns the rows' sequences as ``generate`` writes them, right-padded, and the
decoder's last hidden state at each position but a row's last: what t2u reads (model/stages/text_to_unit.py
``text_states``), so the fast runner never re-runs the text decoder for speech (the exact runner
does, as ``generate`` does).

The exact runner (model/runner.py with no loop) stays the reference: each row equal to
``generate`` alone. The fast runner is held to it by stated tolerances (tests/model/test_fast_runner.py,
docs/performance.md): on the test checkpoint in float32, the rows' tokens and the speech's lengths.

This is the loop inside one batch; rows that join a running decode from later batches are the
stepping decoder's (model/stepping.py), in this same pool. Model thread only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from translate_svc.model.capture import upload
from translate_svc.model.decode.graphs import decode_pool
from translate_svc.model.stages.decoder import TextDecoder
from translate_svc.model_api.rows import RowPlan

#: the encoder frames a row may bring by default: 60 s of speech (100 feature frames a second,
#: strided by 2, then the length adaptor's 8), with room
DEFAULT_MAX_FRAMES = 512


@dataclass(frozen=True, eq=False)
class Decoded:
    """A plan's rows decoded: their sequences (start, language, text, last token; right-padded) and,
    where the decode kept them, the decoder's last hidden states at each position but the last
    (rows, longest - 1, hidden; zero past a row's own)."""

    sequences: Tensor
    states: Tensor | None = None
    #: per row, the log-probability of each token the decode chose (after the prompt and a forced
    #: prefix, up to its EOS or cap), under the model's own distribution; None: not kept
    logprobs: tuple[tuple[float, ...], ...] | None = None
    #: each row's sequence on the host, unpadded (what the loop read with its finished flags);
    #: None: only on the device (``generate``'s), read once where needed
    tokens: tuple[tuple[int, ...], ...] | None = None


class LoopDecoder:
    """A plan's rows through ``DecodeLoop`` (see the module docstring)."""

    def __init__(
        self,
        decoder: TextDecoder,
        processor: object,
        *,
        slots: int = 64,
        max_frames: int = DEFAULT_MAX_FRAMES,
        static: bool = False,
        graphs: bool = False,
        read_behind: bool | None = None,
    ) -> None:
        """``static``: every step a row bucket over the pool's whole windows (the CUDA path);
        ``graphs``: with it, on CUDA, the step captured as CUDA graphs now (model/decode/graphs.py);
        ``read_behind``: the flags read one step behind (``DecodeLoop``; default: on CUDA)."""
        self.decoder = decoder
        self.processor = processor
        self.loop = decode_pool(
            decoder, slots=slots, max_frames=max_frames, static=static, graphs=graphs, read_behind=read_behind
        )

    def decode(
        self,
        enc: Tensor,
        mask: Tensor,
        plan: RowPlan,
        said: Mapping[int, str] | None = None,
        *,
        text_input: bool = False,
        frames: Sequence[int] | None = None,
    ) -> Decoded:
        """Every row of ``plan`` (``enc``/``mask`` expanded to its rows, in order; ``frames``: each
        row's own encoder frames where the host knows them), pass by pass."""
        said = dict(said or {})
        done: dict[int, tuple[tuple[int, ...], Tensor]] = {}
        logprobs: dict[int, tuple[float, ...]] = {}
        for subset in plan.passes if plan.terms else (tuple(range(len(plan))),):
            index = upload(subset, torch.long, enc.device)
            rows = [plan.rows[r] for r in subset]
            got = self.loop.run(
                rows,
                enc.index_select(0, index),
                mask.index_select(0, index),
                said=said,
                text_input=text_input,
                frames=None if frames is None else [frames[r] for r in subset],
            )
            finished = {r: got[plan.rows[r].id] for r in subset}
            if plan.terms and plan.rows[subset[0]].first:  # what was said, for the translations
                for r, f in finished.items():
                    said[plan.rows[r].item] = self.processor.batch_decode(  # type: ignore[attr-defined]
                        [list(f.tokens)], skip_special_tokens=True
                    )[0]
            done.update((r, (f.tokens, f.hidden)) for r, f in finished.items())
            logprobs.update((r, f.logprobs) for r, f in finished.items())
        return decoded_of(
            [done[r] for r in range(len(plan))], [logprobs[r] for r in range(len(plan))], self.decoder.pad
        )


def decoded_of(
    rows: Sequence[tuple[Sequence[int], Tensor]], logprobs: Sequence[tuple[float, ...]], pad: int
) -> Decoded:
    """Rows the loop finished (each its tokens and kept hidden states, in plan order) as one
    ``Decoded``: sequences right-padded with ``pad``, states zero past a row's own."""
    width = max(len(tokens) for tokens, _ in rows)
    hidden = rows[0][1]
    padded = [list(tokens) + [pad] * (width - len(tokens)) for tokens, _ in rows]
    sequences = upload(padded, torch.long, hidden.device)  # one non-blocking copy
    states = torch.zeros((len(rows), width - 1, hidden.shape[-1]), dtype=hidden.dtype, device=hidden.device)
    for r, (_, kept) in enumerate(rows):
        states[r, : kept.shape[0]] = kept
    return Decoded(sequences, states, tuple(logprobs), tuple(tuple(tokens) for tokens, _ in rows))
