"""What the decode loop's tests share (tests/model/decode/test_decode_loop.py, test_decode_lag.py): the
test checkpoint in fp32, real speech's segments through its speech encoder, and every segment in
every language as a plan of decode rows with the encoder outputs expanded to them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from tests.support.speech import read_16k
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.rows import DecodeRow, RowPlan, bare_rows
from translate_svc.types import Term

#: segments of the shared speech, in seconds: different lengths, so the pool pads and masks frames
SPANS = (("jfk.flac", 0.3, 2.3), ("jfk.flac", 3.3, 4.4), ("jfk.flac", 5.4, 7.7), ("jfk.flac", 8.2, 10.6))
SPANS += (("silero_test.wav", 0.5, 3.0), ("silero_test.wav", 4.0, 5.2))
LANGUAGES = ("eng", "fra")
#: a tie between the top two logits that float sums in another order may flip (fp32)
NEAR_TIE = 1e-4


def load_stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32")


def encode_spans(stages: SeamlessStages, shared_audio: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The segments' encoder outputs and features' mask, one row per segment."""
    cache = {name: read_16k(shared_audio / name) for name in {s[0] for s in SPANS}}
    audio = [cache[name][int(a * 16000) : int(b * 16000)] for name, a, b in SPANS]
    batch = stages.speech_encoder.features([stages.extract_features(x) for x in audio])
    with torch.inference_mode():
        enc = stages.speech_encoder.encode(batch)
    return enc, batch.mask


def rows_of(
    encoded: tuple[torch.Tensor, torch.Tensor],
    *,
    prefixes: Sequence[tuple[int, ...]] | None = None,
    terms: tuple[Term, ...] = (),
    first_id: int = 0,
) -> tuple[RowPlan, torch.Tensor, torch.Tensor]:
    """Every segment in every language: a plan (seconds = the segment's length), and the encoder
    outputs and masks expanded to its rows."""
    enc, mask = encoded
    items = [k for k in range(len(SPANS)) for _ in LANGUAGES]
    langs = [lang for _ in SPANS for lang in LANGUAGES]
    seconds = [SPANS[k][2] - SPANS[k][1] for k in items]
    plan = bare_rows(langs, prefixes or [()] * len(items), seconds)
    rows = tuple(
        DecodeRow(
            id=first_id + r.id, item=r.item, language=r.language, target=True, transcript=False, heard=False,
            prefix=r.prefix, seconds=r.seconds, terms=terms,
        )
        for r in plan.rows
    )  # fmt: skip
    index = torch.tensor(items)
    return RowPlan(rows, plan.spoken), enc.index_select(0, index), mask.index_select(0, index)
