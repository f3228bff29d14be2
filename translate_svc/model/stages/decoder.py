"""The text decoder stage: greedy decoding of a plan's rows (model_api/rows.py) through ``generate``.

Each row starts with its own language token and reads its input's encoder output (expanded to
rows by the caller), so mixed-language batches are correct and stay full. A row's bounds and
biases come from the plan, keyed by the row's id (``DecodeRow.id``), not by its place in the
batch: every logits processor here and in model/stages/terms.py holds its rows' state by id
(``ByRow``), so the rows of a decode can join and leave between steps (the decode loop of the
next issue) while ``generate``, which keeps a batch fixed, sees them in plan order.

- ``TextCap`` and ``RowTokenCap``: each row stops at its own token bound, as
  ``generate(max_new_tokens=its bound)`` alone would;
- ``ForcePrefix``: a simultaneous step's committed tokens forced at a row's start;
- terms (model/stages/terms.py): ``RowSequenceBias`` and ``GlossaryForce``, with the transcript-first
  order of the plan's passes (``RowPlan.passes``) so translations know what was said;
- benchmark mode's forced lengths (model/stages/forced.py ``ForceTextLength``).

It takes tensors and a plan, never a request. Model thread only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from transformers import (
    GenerationMixin,
    LogitsProcessor,
    LogitsProcessorList,
    SeamlessM4Tv2Model,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.modeling_outputs import BaseModelOutput

from translate_svc.model.stages.by_row import ByRow
from translate_svc.model.stages.forced import ForcedLengths, ForceTextLength
from translate_svc.model.stages.shapes import ShapeLog
from translate_svc.model.stages.terms import GlossaryForce, RowSequenceBias, TermTokens, row_glossary, row_terms
from translate_svc.model_api.rows import DecodeRow, RowPlan


@dataclass(frozen=True)
class TextCap:
    """Runaway decodes: a row may emit at most ``per_s`` text tokens per second of its audio plus
    ``base``. Real speech stays far below (about 3-5 SentencePiece tokens per second); a row that
    never emits EOS stops there instead of holding its whole batch to the model's global limit."""

    per_s: float = 16.0
    base: int = 16

    def tokens(self, audio_s: float) -> int:
        return math.ceil(self.per_s * audio_s) + self.base


class RowTokenCap(StoppingCriteria):
    """Stop each row after its own number of new tokens (``generate``'s per-row stopping: a stopped
    row is padded from then on), so a row equals ``generate(max_new_tokens=its cap)`` alone. Caps
    by row id (``ByRow``)."""

    def __init__(self, caps: Mapping[int, int] | Sequence[int], order: Sequence[int] | None = None) -> None:
        self.rows = ByRow(caps, order)
        self._prompt: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        if self._prompt is None:  # first call: the prompt plus one new token
            self._prompt = input_ids.shape[1] - 1
        new = input_ids.shape[1] - self._prompt
        caps = torch.tensor(self.rows.values, device=input_ids.device)
        done: torch.BoolTensor = caps <= new  # type: ignore[assignment]
        return done


class ForcePrefix(LogitsProcessor):
    """A row's first text tokens are its prefix (by row id): at those steps every other score is
    -inf. Greedy decoding then continues from the prefix as from any of its own tokens; a row with
    an empty prefix is untouched, so it equals the plain decode exactly. Runs after every other
    processor (``TextDecoder.generate``), so nothing can drop a forced token."""

    def __init__(
        self,
        prefixes: Mapping[int, Sequence[int]] | Sequence[Sequence[int]],
        order: Sequence[int] | None = None,
        prompt_len: int = 2,
    ) -> None:
        self.rows = ByRow({i: tuple(p) for i, p in ByRow(prefixes, order).by_id.items()}, order)
        self.prompt_len = prompt_len  # decoder start token + language token

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_len
        prefixes = self.rows.values
        rows = [r for r, p in enumerate(prefixes) if step < len(p)]
        if not rows:
            return scores
        index = torch.tensor(rows, device=scores.device)
        tokens = torch.tensor([prefixes[r][step] for r in rows], device=scores.device)
        forced = scores.clone()
        forced[index] = float("-inf")
        forced[index, tokens] = 0.0
        return forced  # type: ignore[return-value]


class ChosenLogprobs(LogitsProcessor):
    """Records the log-probability of each token ``generate`` chooses under the model's own
    distribution: first in the processor list, it sees the raw logits of each step and keeps their
    log-softmax; at the next call (or ``finish``, with the final sequences) it reads the chosen
    token's entry. ``steps[t]``: every row's value at new token ``t`` (rows past their end: noise,
    cut by the caller). Returns the scores untouched."""

    def __init__(self, prompt_len: int = 2) -> None:
        self.prompt_len = prompt_len
        self.steps: list[torch.Tensor] = []
        self._last: torch.Tensor | None = None

    def _read(self, chosen: torch.Tensor) -> None:
        if self._last is not None:
            self.steps.append(self._last.gather(1, chosen.unsqueeze(1))[:, 0])
            self._last = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self.prompt_len:
            self._read(input_ids[:, -1])
        self._last = scores.float().log_softmax(-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> list[list[float]]:
        """Each row's values at every new token of ``sequences`` (the last step's read here)."""
        if sequences.shape[1] > self.prompt_len:
            self._read(sequences[:, -1])
        if not self.steps:
            return [[] for _ in range(sequences.shape[0])]
        return torch.stack(self.steps, 1).tolist()


class TextDecoder:
    """Greedy decoding of plan rows with ``generate`` (see the module docstring)."""

    def __init__(
        self,
        model: SeamlessM4Tv2Model,
        text_lang_ids: Mapping[str, int],
        terms: TermTokens,
        processor: object,
        *,
        forced: ForcedLengths | None = None,
        text_cap: TextCap | None = None,
        shapes: ShapeLog | None = None,
    ) -> None:
        self.model = model
        self.text_lang_ids = dict(text_lang_ids)
        self.terms = terms
        #: the model's processor: its ``batch_decode`` writes a first pass's transcripts
        self.processor = processor
        self.forced = forced
        self.text_cap = text_cap
        #: where each decode's shape (rows, encoder frames) is recorded (model/stages/shapes.py)
        self.shapes = shapes
        gen = model.generation_config
        self._gen_max_new = getattr(gen, "max_new_tokens", None)
        self.eos = int(gen.eos_token_id)
        self.pad = int(gen.pad_token_id)
        #: per row of the last ``generate``/``decode``, the log-probability of each token it chose
        #: (after a forced prefix, up to EOS or the row's cap) under the model's own distribution
        self.last_logprobs: list[tuple[float, ...]] = []

    def max_new_tokens(self, audio_s: float) -> int:
        """The text-token bound of a row of ``audio_s`` seconds: ``TextCap``'s rule, never above
        the generation config's own ``max_new_tokens``. ``generate(text_max_new_tokens=...)`` with
        this value is what the row is equal to."""
        assert self.text_cap is not None
        cap = self.text_cap.tokens(audio_s)
        return cap if self._gen_max_new is None else min(cap, int(self._gen_max_new))

    def row_cap(self, row: DecodeRow) -> int:
        """A row's new-token bound: ``max_new_tokens`` (without a ``TextCap``, the generation
        config's), and never below a forced prefix that ends the row (a text said as written,
        ``SourceText.as_written``: said whole); a simultaneous step's prefix is cut at the bound."""
        base = self.max_new_tokens(row.seconds) if self.text_cap is not None else int(self._gen_max_new or 0)
        return max(base, len(row.prefix)) if self.ends(row) else base

    def ends(self, row: DecodeRow) -> bool:
        """Whether the row's forced prefix ends it (its last token EOS: a text said as written)."""
        return bool(row.prefix) and row.prefix[-1] == self.eos

    def generate(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        rows: Sequence[DecodeRow],
        said: Mapping[int, str] | None = None,
    ) -> torch.Tensor:
        """One ``generate`` over ``rows`` (``enc``/``mask`` already expanded to them, in order):
        their sequences as ``generate`` returns them. ``said``: what each input (by index) is known
        to have said (its transcript decoded in an earlier pass, or a text input's own text), where
        KEEP terms and glossary entries look for their phrases."""
        said = said or {}
        if self.shapes is not None:
            self.shapes.saw("decoder", (len(rows), enc.shape[1]))
        ids = [row.id for row in rows]
        lang_ids = torch.tensor([[self.text_lang_ids[row.language]] for row in rows], device=enc.device)
        extra: dict[str, object] = {}
        record = ChosenLogprobs()
        processors: list[LogitsProcessor] = [record]  # first: the model's own distribution
        caps: dict[int, int] = {}
        if self.forced is not None:
            lengths = {row.id: self.forced.text_tokens(row.seconds) for row in rows}
            processors.append(ForceTextLength(lengths, self.eos, ids))
            extra["max_new_tokens"] = max(lengths.values()) + 1
        else:
            processors.extend(self.term_processors(rows, said))
            longer = self._gen_max_new is not None and any(
                self.ends(row) and len(row.prefix) > self._gen_max_new for row in rows
            )
            if self.text_cap is not None or longer:
                caps.update((row.id, self.row_cap(row)) for row in rows)
                extra.update(stopping_criteria=StoppingCriteriaList([RowTokenCap(caps, ids)]))
                extra["max_new_tokens"] = max(caps.values())
        if any(row.prefix for row in rows):
            processors.append(ForcePrefix({row.id: row.prefix for row in rows}, ids))
        extra["logits_processor"] = LogitsProcessorList(processors)
        out = GenerationMixin.generate(
            self.model,  # type: ignore[arg-type]
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=mask,
            decoder_input_ids=lang_ids,
            return_dict_in_generate=True,
            **extra,  # type: ignore[arg-type]
        )
        sequences: torch.Tensor = out.sequences  # type: ignore[union-attr]
        self.last_logprobs = _chosen(sequences, record.finish(sequences), rows, caps, self.eos)
        return sequences

    def term_processors(self, rows: Sequence[DecodeRow], said: Mapping[int, str]) -> list[LogitsProcessor]:
        """Each row's term biases and glossary translations (model/stages/terms.py), keyed by row id."""
        if not any(row.terms for row in rows):
            return []
        ids = [row.id for row in rows]
        biases = {
            row.id: self.terms.bias(row_terms(row.terms, transcript_row=row.heard, transcript=said.get(row.item)))
            for row in rows
        }
        glossaries = {
            row.id: self.terms.glossary(
                row_glossary(row.terms, language=row.language, source=said.get(row.item)) if not row.heard else ()
            )
            for row in rows
        }
        out: list[LogitsProcessor] = []
        if any(biases.values()):
            out.append(RowSequenceBias(biases, self.terms, ids))
        if any(glossaries.values()):
            out.append(GlossaryForce(glossaries, self.terms, order=ids))
        return out

    def decode(
        self,
        enc: torch.Tensor,
        mask: torch.Tensor,
        plan: RowPlan,
        said: Mapping[int, str] | None = None,
    ) -> torch.Tensor:
        """Every row of ``plan`` (``enc``/``mask`` expanded to its rows, in order), pass by pass
        (``RowPlan.passes``): a first pass's heard rows are written into ``said`` before the
        translations that need them are decoded. Returns the rows' sequences,
        right-padded to the longest."""
        if not plan.terms:
            return self.generate(enc, mask, plan.rows)
        said = dict(said or {})
        parts: list[tuple[tuple[int, ...], torch.Tensor]] = []
        logprobs: dict[int, tuple[float, ...]] = {}
        for subset in plan.passes:
            index = torch.tensor(subset, device=enc.device)
            seqs = self.generate(
                enc.index_select(0, index), mask.index_select(0, index), [plan.rows[r] for r in subset], said
            )
            if plan.rows[subset[0]].first:  # a first pass: what was said, for the translations
                texts = self.processor.batch_decode(seqs, skip_special_tokens=True)  # type: ignore[attr-defined]
                said.update((plan.rows[r].item, t) for r, t in zip(subset, texts, strict=True))
            parts.append((subset, seqs))
            logprobs.update(zip(subset, self.last_logprobs, strict=True))
        width = max(seqs.shape[1] for _, seqs in parts)
        out = torch.full((len(plan), width), self.pad, dtype=parts[0][1].dtype, device=parts[0][1].device)
        for subset, seqs in parts:
            out[torch.tensor(subset, device=out.device), : seqs.shape[1]] = seqs
        self.last_logprobs = [logprobs[r] for r in range(len(plan))]
        return out


def _chosen(
    sequences: torch.Tensor, steps: list[list[float]], rows: Sequence[DecodeRow], caps: Mapping[int, int], eos: int
) -> list[tuple[float, ...]]:
    """Each row's values at the tokens it chose: after its forced prefix, up to its first EOS
    (included) or its cap, as the decode loop reports them (model/decode/loop.py ``Finished``)."""
    out = []
    for seq, values, row in zip(sequences.tolist(), steps, rows, strict=True):
        new = seq[2:]
        end = new.index(eos) + 1 if eos in new else len(new)
        end = min(end, caps.get(row.id, end))
        prefix = list(row.prefix[:end])
        skip = prefix.index(eos) + 1 if eos in prefix else len(prefix)
        out.append(tuple(values[min(skip, end) : end]))
    return out
