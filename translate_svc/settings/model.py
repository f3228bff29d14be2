"""The model's settings (``Settings.model``): its checkpoint, device and dtype, its threads, the
runaway-decode bounds, the language identifier and the warm-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

DEFAULT_MODEL_DIR = Path("model_cache/seamless-m4t-v2-large")
DEFAULT_LID_DIR = Path("model_cache/mms-lid-126")


class ModelSettings(BaseModel):
    path: Path = DEFAULT_MODEL_DIR
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    #: torch CPU threads for the model; None: all cores but one on CPU (the event loop, gRPC and
    #: VAD need one; oversubscribed OpenMP threads spin and stall them), torch's default on CUDA.
    cpu_threads: int | None = Field(None, ge=1, le=256)
    #: Benchmark only (random full-size weights): force every text row to this many tokens per
    #: second of audio, and text-to-unit to ``forced_units_per_s``. Output is noise. See model/stages/forced.py.
    forced_text_tokens_per_s: float | None = Field(None, gt=0)
    forced_units_per_s: float = Field(50.0, gt=0)
    #: Test and benchmark only: ``stable`` serves model/testing/stable.py's made-up translator (words from
    #: the audio's length, exact commit points for simultaneous mode) instead of the model; ``path``
    #: must be the test checkpoint (refused next to real weights). Output is not a translation.
    test_translator: Literal["stable"] | None = None
    #: runaway decodes: at most this many text tokens per second of a segment's audio, plus
    #: ``max_text_tokens_base`` (and never more than the model's own max_new_tokens). Real speech
    #: stays far below; a row that never emits EOS stops here instead of holding its batch.
    max_text_tokens_per_s: float = Field(16.0, gt=0)
    max_text_tokens_base: int = Field(16, ge=1)
    #: which runner decodes: ``exact``, ``generate`` (each row equal to it alone: the
    #: reference); ``fast``, our own decode loop (model/decode/batch.py: rows join and leave at every
    #: step, t2u reads the loop's hidden states; held to exact by stated tolerances,
    #: docs/performance.md); ``auto``: fast on CUDA, and on CPU in float32 (measured faster end to
    #: end there, docs/performance.md); exact on CPU in a reduced precision, where the stages run
    #: each row alone to equal ``generate`` (``SeamlessStages.exact_rows``)
    runner: Literal["auto", "exact", "fast"] = "auto"
    #: the fast runner's decode slots: rows decoded at once. Its memory is a KV cache per slot (one
    #: pool, which the stepping decoder shares; on the full model in bfloat16 about
    #: 76 MB a slot, 152 in float32). None: 64 on CUDA, 16 on CPU (whose batches are small)
    decode_slots: int | None = Field(None, ge=1, le=4096)
    #: on CUDA, the fast runner's decode step as CUDA graphs, one per row bucket (1, 2, 4 ...
    #: ``decode_slots``), captured at load (model/decode/graphs.py): a step is one graph launch
    #: instead of hundreds of kernel launches from Python; off: the same step eagerly. No effect
    #: on other devices
    decode_graphs: bool = True
    #: on CUDA, every other stage's static path as CUDA graphs too, one per bucket, captured during
    #: the warm-up (model/capture.py: the speech encoder, the decode's admission, text-to-unit's
    #: and the vocoder's two parts each); off: those run eagerly on the same shapes (the
    #: decode step stays ``decode_graphs``'). No effect on other devices
    stage_graphs: bool = True
    #: with the steps core (``engine.core``), the jobs whose rows ended are finished (text-to-unit,
    #: the vocoder, word timings) on a thread of their own, on CUDA on a stream of its own, while
    #: the decode goes on with the other rows (model/finish/stage.py); off: inside the decode's
    #: turn, every other row waiting for it. None (the default): on CUDA only (on the 2-core CPU
    #: it measured no faster: docs/performance.md)
    finish_thread: bool | None = None
    #: the spoken-language identifier (MMS-LID, ``translate-svc download-lid-model``), loaded
    #: when this directory exists; without it, language detection answers FAILED_PRECONDITION
    #: and everything else works. None: never load one.
    lid_path: Path | None = DEFAULT_LID_DIR
    #: every stage's lengths padded up to buckets so that shapes repeat (model/stages/shapes.py):
    #: the encoder's frames (and, on the fast runner's static path, its rows), t2u's text,
    #: characters and units, the vocoder's units and frames; the masks make the padding invisible
    #: (parity: tests/model/stages/test_frame_buckets.py). On CUDA a new shape costs a kernel selection and
    #: a cuDNN plan on the request that meets it (4.7x a warm segment, measured on an H200). None:
    #: on, except where the stages run each row alone to equal ``generate`` (CPU in a reduced
    #: precision: ``SeamlessStages.exact_rows``); false: lengths as they come
    buckets: bool | None = None
    #: what runs before the server says ready (engine/warmup.py): ``batches``, every batch size the
    #: scheduler can form (1..engine.max_batch_size) at each of ``warmup_lengths_s`` (on CUDA a
    #: batch of a new shape costs several times its compute: docs/performance.md); ``one``, a single
    #: one-second segment; ``buckets``, every batch size at one length per encoder frame
    #: bucket up to ``warmup_longest_s``, then every t2u and vocoder bucket (with the stages' length
    #: buckets on: ``buckets``), after which such segments meet no new shape;
    #: ``auto``: ``buckets`` on CUDA (``batches`` there with ``buckets`` off), ``one`` on CPU
    warmup: Literal["auto", "one", "batches", "buckets"] = "auto"
    warmup_lengths_s: list[Annotated[float, Field(gt=0, le=600)]] = Field(default_factory=lambda: [1.0, 2.5, 6.0])
    #: no warm-up batch starts after this many seconds (the rest of the plan runs cold); None: no limit
    warmup_max_s: float | None = Field(120.0, ge=0)
    #: ``buckets``: the longest segment the warm-up covers (vad.max_segment_ms's default); a longer
    #: one may meet shapes it did not run (``translate_svc_model_cold_shapes_total``)
    warmup_longest_s: float = Field(15.0, gt=0, le=60)
    #: the mark every synthetic speech output carries, added where the vocoder makes it (before any
    #: encoding, so every door's speech is marked): ``perth``, PerTh's implicit watermark
    #: (translate_svc/marking; its trained weights from the ``resemble-perth`` wheel, loaded at
    #: start); ``off``, speech unmarked. The operator's choice, never a caller's: ListLanguages
    #: says which (``speech_watermark``)
    watermark: Literal["perth", "off"] = "perth"

    def fast_on(self, device: str) -> bool:
        """Whether the fast runner (our own decode loop) decodes on ``device`` ("cpu", "cuda"):
        ``runner`` "fast", or "auto" on CUDA and on CPU in float32 (measured faster end to end
        there, with the steps core holding the flood's fair share: docs/decisions.md); on CPU in a
        reduced precision the stages run each row alone to equal ``generate``
        (``SeamlessStages.exact_rows``), which is the exact runner's work."""
        if self.runner != "auto":
            return self.runner == "fast"
        return device == "cuda" or self.dtype in ("auto", "float32")

    def slots_on(self, device: str) -> int:
        """``decode_slots``, or its default on ``device``: 64 on CUDA, 16 on CPU (whose batches are
        small, and whose memory holds the pools in float32)."""
        if self.decode_slots is not None:
            return self.decode_slots
        return 64 if device == "cuda" else 16
