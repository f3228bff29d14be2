"""Our own greedy decode loop for the text decoder: rows join and leave at every step.

``generate`` owns its loop: a batch is fixed from its first step to its longest row's last, and
each step is hundreds of small launches from Python. ``DecodeLoop`` keeps a fixed pool of
``slots`` rows over the loaded model's own text decoder weights (model/decode/step.py computes
exactly what ``SeamlessM4Tv2Decoder`` does):

- ``admit(rows, enc, mask)``: plan rows (model_api/rows.py ``DecodeRow``) join into free slots: their
  encoder output's cross-attention keys and values are projected **once**, into the slot (padded
  to the pool's ``max_frames``, masked past the row's own frames), and their known tokens (the
  decoder start, the language token, a forced prefix: a simultaneous step's committed tokens)
  are fed. A pool without room for all of them admits none and raises ``PoolFull``: the caller's
  queue holds them (the engine's back-pressure), never an out-of-memory.
- ``step()``: one greedy token for every active row in one batched forward over slots
  ``0 .. k-1`` (eagerly the pool keeps its rows packed, ``k`` rows; static, ``k`` a row bucket
  with free slots inside it: model/decode/seats.py), then the rows' bounds as tensor operations on the device
  (benchmark mode's forced lengths, argmax, EOS, each row's token cap); the rows that finished are
  returned (``Finished``: id, tokens as ``generate`` writes the row alone, the decoder's last hidden
  state at each position but the last, what text-to-unit reads) and leave their slot when the host
  reads the finished flags: every step by default, every ``read_every`` steps, or one step behind
  (``read_behind``, the default on CUDA: a non-blocking copy the next step takes). A row finished
  between reads runs masked steps that change nothing of it (model/decode/step.py ``choose``).
  The rows read finished at one step leave together (one copy of their hidden states).
- ``drop(row_id)``: a row that failed or was cancelled leaves alone; the others go on.

Each row's cap is ``TextDecoder``'s (its ``TextCap`` bound, else the generation config's
``max_new_tokens``; benchmark mode: its forced length and EOS), so a row's tokens equal
``generate`` on it (tests/model/decode/test_decode_loop.py; fp32 differences only at near-ties of the top
two logits, from the order of floating-point sums).

Terms and glossaries (model/stages/terms.py) stay host processors: a row with terms gets its own
``RowSequenceBias``/``GlossaryForce`` (built by ``TextDecoder`` for a batch of that one row) and is
processed alone on its own tokens each step, so rows joining or leaving never reorder them. Only
rows with terms cost a host round trip.

CUDA graphs: the step only writes static buffers in place (``Slots``), at positions read from the
device. Eagerly it attends over the longest active row's tokens and frames (the host knows them
without a sync); ``static=True`` runs what a captured graph replays: a row bucket (free slots of
the bucket step too, harmlessly, in their own buffers) over the pool's whole windows.
model/decode/graphs.py captures that step once per bucket on CUDA (``DecodeLoop.replay``); a step
with a row that has terms runs eagerly.

Model thread only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from translate_svc.model import regions
from translate_svc.model.decode import step as decode_step
from translate_svc.model.decode.admission import KNOWN, Admission
from translate_svc.model.decode.finished import Finished
from translate_svc.model.decode.reads import HostRead, ReadBehind
from translate_svc.model.decode.seats import PoolRow, Seats
from translate_svc.model.decode.step import Slots, StepShape, Views, Weights, doubling, powers_of_two
from translate_svc.model.decode.whole import run_rows
from translate_svc.model.stages.decoder import TextDecoder
from translate_svc.model.stages.padding import pad_rows
from translate_svc.model_api.rows import DecodeRow

#: the decoder start token and the language token before a row's text
PROMPT = 2
#: the self-attention window grows in these steps (eagerly)
WINDOW_STEP = 8
#: the static step's smallest token and frame windows (they double up to the pool's): a graph per
#: (rows, tokens, frames) bucket reads at most twice what its longest row holds
SMALLEST_WINDOW = 16
#: a row's sequence length when neither a ``TextCap`` nor the generation config bounds it
#: (``GenerationConfig``'s own default ``max_length``)
DEFAULT_MAX_LENGTH = 20


#: audio seconds per encoder frame (100 feature frames a second, strided by 2, then the length
#: adaptor's 8): what a row of ``max_frames`` frames can hold
SECONDS_PER_FRAME = 0.16


class PoolFull(RuntimeError):
    """More rows asked to join than the pool has free slots; none of them joined."""


class DecodeLoop:
    """A pool of decode rows over a loaded model's text decoder (see the module docstring)."""

    def __init__(
        self,
        decoder: TextDecoder,
        *,
        slots: int,
        max_frames: int,
        max_tokens: int | None = None,
        static: bool = False,
        buckets: Sequence[int] | None = None,
        read_every: int = 1,
        read_behind: bool | None = None,
    ) -> None:
        """``decoder``: the loaded model's text decoder stage (its model, language tokens, caps,
        terms and benchmark mode). ``slots``: rows decoded at once. ``max_frames``: the longest
        encoder output a row may bring. ``max_tokens``: the longest sequence a row may reach (its
        prompt counted); default: the generation config's bound. ``static``: every step runs a row
        bucket (``buckets``, default powers of two up to ``slots``) over the pool's whole windows,
        the shapes a captured graph replays (model/decode/graphs.py); eagerly it is the code the GPU
        runs, minus the capture. ``read_every``: the host reads the rows' finished flags every this
        many steps (a row that finished in between runs at most that many masked steps, its tokens
        ending at its EOS or cap). ``read_behind`` (default: on CUDA): each read is a non-blocking
        copy into pinned host memory, taken at the next step once that step's work is queued, so the
        host never waits for the step it just launched."""
        if slots < 1 or max_frames < 1:
            raise ValueError(
                f"a decode pool needs at least one slot and one frame (slots={slots}, frames={max_frames})"
            )
        model = decoder.model
        decode_step.check_greedy(model.generation_config)
        self.decoder = decoder
        self.text = model.text_decoder
        self.lm_head = model.lm_head
        gen = model.generation_config
        self.eos, self.pad = decoder.eos, decoder.pad
        self.start = int(gen.decoder_start_token_id)
        gen_new = getattr(gen, "max_new_tokens", None)
        #: a row's new tokens where no cap of its own bounds it (``generate``'s rule)
        self.default_new = int(gen_new) if gen_new is not None else int(gen.max_length or DEFAULT_MAX_LENGTH) - PROMPT
        if max_tokens is None:
            max_tokens = PROMPT + self.default_new
            if decoder.forced is not None:  # benchmark mode's lengths pass the config's bound, as
                # TextDecoder.generate lets them: room for the longest a row of max_frames is forced to
                longest_s = max_frames * SECONDS_PER_FRAME
                max_tokens = max(max_tokens, PROMPT + decoder.forced.text_tokens(longest_s) + 1)
        self.max_tokens = max_tokens
        self.slots, self.max_frames = slots, max_frames
        param = next(self.text.parameters())
        self.device, self.dtype = param.device, param.dtype
        positions = self.text.embed_positions  # the table grows as the upstream forward would grow it
        if self.pad + 1 + self.max_tokens > positions.weights.size(0):
            positions.make_weights(
                self.max_tokens + 2 * positions.offset, positions.embedding_dim, positions.padding_idx
            )
        self.weights = Weights.of(self.text, model.lm_head)
        self.buffers = Slots.allocate(self.text, slots, self.max_tokens, max_frames, self.device, self.dtype)
        self._views: dict[StepShape, Views] = {}
        self.static = static
        self.buckets = tuple(sorted(set(buckets or powers_of_two(slots)) | {slots}))
        if self.buckets[0] < 1 or self.buckets[-1] > slots:
            raise ValueError(f"row buckets {self.buckets} outside 1..{slots}")
        #: which row holds which slot (model/decode/seats.py): static, a free slot may stay inside
        #: the rows' bucket; eagerly, packed
        self.seats = Seats(self.buffers, slots, self.device, self.bucket if static else None)
        #: the static step's token and frame windows (doubling from ``SMALLEST_WINDOW`` to the pool's)
        self.windows = doubling(SMALLEST_WINDOW, self.max_tokens)
        self.frame_windows = doubling(SMALLEST_WINDOW, max_frames)
        #: where the rows of the pool's other user (the stepping decoder) that finish while ``run``
        #: steps the pool go (model/stepping.py sets it); None: no other user
        self.others: Callable[[list[Finished]], None] | None = None
        self.run_ids = itertools.count(-1_000_000, -1)  # ``run``'s rows' ids in the pool
        #: a captured step per row bucket and read set (model/decode/graphs.py): runs
        #: ``static_step`` of that many rows in place; None: eager
        self.replay: Callable[[StepShape, int], None] | None = None
        if read_every < 1:
            raise ValueError(f"read_every must be at least 1 (got {read_every})")
        self.read_every = read_every
        self.read_behind = self.device.type == "cuda" if read_behind is None else read_behind
        self._forced = decoder.forced is not None  # benchmark mode's forced lengths (choose's work)
        self._terms = 0  # active rows with term processors (each costs a host round trip a step)
        self._longest = 0  # the longest active row's length (host's count), and its most frames
        self._frames = 0
        self._since = 0  # steps since the flags were last read
        #: the read behind's host buffers and its read in flight (model/decode/reads.py)
        self.reads = ReadBehind(self.buffers, self.device)
        #: the static step copies its read into the host buffers itself (inside its graph)
        self.copy_in_step = static and self.read_behind and read_every == 1
        #: an admission's staging and device work (model/decode/admission.py)
        self._admitting = Admission(
            self.buffers, self.weights, static=static, max_tokens=self.max_tokens, pad=self.pad, dtype=self.dtype
        )
        #: the admission's device work, a graph per (rows, frames) bucket on CUDA (model/capture.py)
        self.admission = self._admitting.stage

    # -- the pool --------------------------------------------------------------------------

    @property
    def _rows(self) -> list[PoolRow]:
        """The active rows, in slot order."""
        return self.seats.rows

    @property
    def active(self) -> tuple[int, ...]:
        """The active rows' ids, in slot order."""
        return tuple(r.row.id for r in self._rows)

    @property
    def free(self) -> int:
        return self.slots - self.seats.count

    def __len__(self) -> int:
        return self.seats.count

    def row_limit(self, row: DecodeRow) -> tuple[int, int]:
        """A row's new-token cap and its benchmark forced length (-1: none), as ``TextDecoder.generate``
        bounds it: forced lengths end on EOS after that many tokens; else its ``TextCap`` bound; else
        the generation config's; never below a forced prefix that ends the row (``TextDecoder.row_cap``)."""
        dec = self.decoder
        if dec.forced is not None:
            length = dec.forced.text_tokens(row.seconds)
            return length + 1, length
        if dec.text_cap is not None:
            return dec.row_cap(row), -1
        return max(self.default_new, len(row.prefix)) if dec.ends(row) else self.default_new, -1

    @torch.inference_mode()
    def admit(
        self,
        rows: Sequence[DecodeRow],
        enc: Tensor,
        mask: Tensor,
        *,
        said: Mapping[int, str] | None = None,
        text_input: bool = False,
        frames: Sequence[int] | None = None,
    ) -> list[Finished]:
        """``rows`` join the pool (``enc``: (rows, frames, hidden), one encoder output per row, as
        ``TextDecoder.decode`` takes them; ``mask``: the features' mask, sub-sampled here as the model
        does, or with ``text_input`` the text encoder's mask as it is; ``frames``: each row's own
        encoder frames where the host knows them, else read from the mask). ``said``: per input index,
        what it is known to have said (terms). Raises ``PoolFull`` (none joins) where the free slots
        are too few, ``ValueError`` for a row the pool cannot hold. Returns rows already finished
        by their forced prefix (its cap or EOS inside it); the others decode from the next step."""
        if not rows:
            return []
        if len(rows) > self.free:
            raise PoolFull(f"{len(rows)} rows asked to join a decode pool with {self.free} of {self.slots} slots free")
        if enc.shape[0] != len(rows) or mask.shape[0] != len(rows):
            raise ValueError(f"{len(rows)} rows with {enc.shape[0]} encoder outputs and {mask.shape[0]} masks")
        known_ids = set(self.active)
        if len({r.id for r in rows}) < len(rows) or known_ids & {r.id for r in rows}:
            raise ValueError("a row id is already in the decode pool (ids are unique within a pool)")
        lengths = list(frames) if frames is not None else self._own_frames(enc, mask, text_input)
        if enc.shape[1] > self.max_frames:
            enc = enc[:, : max(lengths)]
        if enc.shape[1] > self.max_frames:
            raise ValueError(f"an encoder output of {enc.shape[1]} frames; the pool holds {self.max_frames}")
        seqs, limits, forced = [], [], []
        for row in rows:
            if row.language not in self.decoder.text_lang_ids:
                raise ValueError(f"row {row.id}: the text decoder has no language token for {row.language!r}")
            cap, force = self.row_limit(row)
            if PROMPT + cap > self.max_tokens:
                raise ValueError(f"row {row.id}: {cap} new tokens; the pool holds {self.max_tokens - PROMPT}")
            seq = [self.start, self.decoder.text_lang_ids[row.language], *row.prefix[:cap]]
            if self.eos in row.prefix[:cap]:  # a forced EOS ends the row, as generate stops there
                seq = seq[: PROMPT + row.prefix.index(self.eos) + 1]
            seqs.append(seq)
            limits.append(PROMPT + cap)
            forced.append(force)
        n = len(rows)
        # the lowest free slots: eagerly the pool is packed, so they follow its rows
        slots = self.seats.free()[:n]
        first = slots[0]
        buf = self.buffers
        # the rows' host values staged in one pinned buffer and copied in one non-blocking copy,
        # then scattered into their slots on the device: no blocking upload, no host sync
        dev = self._admitting.staged(slots, seqs, limits, forced, lengths)
        enc = enc.to(self.dtype)
        if self.static:  # a row bucket's shapes (copies of the first row, written to its slot)
            bucket = self.bucket(n)
            self.admission((bucket, enc.shape[1]), pad_rows(dev, bucket), pad_rows(enc, bucket))
        else:
            self.admission(None, dev, enc)
        if not self.static:  # eagerly, the known tokens but the last in one forward
            width = max(len(s) for s in seqs)
            decode_step.prefill(
                self.weights, buf, first, buf.tokens[first : first + n, :width], dev[:, KNOWN], max(lengths)
            )
        said = said or {}
        joined = []
        for row, seq, count, slot in zip(rows, seqs, lengths, slots, strict=True):
            terms = row.terms and self.decoder.forced is None  # benchmark mode has no terms (TextDecoder)
            procs = self.decoder.term_processors([row], said) if terms else []
            joined.append(PoolRow(row, 1 if self.static else len(seq), count, procs, len(seq), slot))
        self.seats.seat(joined)
        self._recount()
        if self.static:  # a row its prefix ends (its cap or EOS) ends at the step that feeds it
            return []
        ended = [
            joined[j]
            for j, seq in enumerate(seqs)
            if len(seq) >= limits[j] or (len(seq) > PROMPT and seq[-1] == self.eos)
        ]
        return self._leave(ended)

    def _own_frames(self, enc: Tensor, mask: Tensor, text_input: bool) -> list[int]:
        """Each row's own encoder frames: the text encoder's mask as it is, or the features' mask
        sub-sampled to the speech encoder's frames (``SeamlessM4Tv2Model.forward``'s rule)."""
        if text_input:
            own = mask.sum(1)
        else:
            own = self.decoder.model._compute_sub_sample_lengths_from_attention_mask(mask)
        return [min(int(x), enc.shape[1]) for x in own.tolist()]

    @torch.inference_mode()
    def step(self) -> list[Finished]:
        """One token for every active row (see the module docstring); the rows that finished leave."""
        if not len(self):
            return []
        extent = self.seats.extent  # the last slot in use, plus one (eagerly: the rows)
        shape = self.shape(extent)
        rows = shape.rows
        parity = self.reads.parity
        copied = False
        if self.static and not self._terms:  # what the graph replays (eagerly on CPU)
            with regions.region("decode.step"):
                if self.replay is not None:
                    self.replay(shape, parity)
                else:
                    self.static_step(shape, parity)
            copied = self.copy_in_step
        else:
            logits, at = decode_step.step(self.weights, self.buffers, self.views(shape))
            raw = None
            if self._terms:
                raw = logits.clone()  # the confidence is the model's own (docs/decisions.md)
                for r in self._rows:
                    if r.processors:
                        self._process(r.slot, r, logits)
            decode_step.choose(self.buffers, rows, logits, self.eos, at, raw, forced=self._forced)
        for r in self._rows:
            r.length += 1  # the host's count: a finished row's true length is read with its flag
        self._longest += 1
        self._since += 1
        out = self._collect() if self.reads.pending else []
        if self._since >= self.read_every:
            self._since = 0
            if self.read_behind:
                if not copied:
                    self.reads.copy_out(extent, parity)
                self.reads.issue(tuple(None if r is None else r.row.id for r in self.seats.held), parity)
            else:
                held = list(self.seats.held)
                flags = self.buffers.done[: len(held)].tolist()
                ended = [(r, j) for j, (r, f) in enumerate(zip(held, flags, strict=True)) if f and r is not None]
                out += self._ended(ended, self.buffers.length[:extent])
        return out

    def static_step(self, shape: StepShape, parity: int) -> None:
        """What a captured graph replays (model/decode/graphs.py): the step and the choice of a
        row bucket over its windows in place and, where the step copies its read itself
        (``copy_in_step``), its flags, lengths, tokens and log-probabilities into the host buffers
        of set ``parity``."""
        logits, at = decode_step.step(self.weights, self.buffers, self.views(shape))
        decode_step.choose(self.buffers, shape.rows, logits, self.eos, at, forced=self._forced)
        if self.copy_in_step:
            self.reads.copy_out(shape.rows, parity)

    def _collect(self) -> list[Finished]:
        """The read in flight taken: the rows it saw finished leave (found by id: rows may have
        joined or moved since; a drop lets the read go)."""
        ids, host = self.reads.take()
        flags = host.done[: len(ids)].tolist()
        seen = [j for j, (f, row_id) in enumerate(zip(flags, ids, strict=True)) if f and row_id is not None]
        if not seen:
            return []
        by_id = {r.row.id: r for r in self._rows}
        ended = [(by_id[row_id], j) for j in seen if (row_id := ids[j]) is not None and row_id in by_id]
        return self._ended(ended, host.length[: len(ids)], read=host)

    def _ended(
        self, ended: Sequence[tuple[PoolRow, int]], lengths: Tensor, *, read: HostRead | None = None
    ) -> list[Finished]:
        """Rows read finished (each with its index in the read) leave, with their true lengths
        (``lengths``, as read beside the flags); ``read``: their tokens too (the host copies of
        the read behind, at each row's index in it)."""
        if not ended:
            return []
        true = lengths.tolist()
        for r, j in ended:
            r.length = true[j]
        return self._leave([r for r, _ in ended], copies=None if read is None else (read, [j for _, j in ended]))

    def bucket(self, n: int) -> int:
        """The static step's rows for ``n`` active rows: the smallest bucket that holds them."""
        return next(b for b in self.buckets if b >= n)

    def shape(self, n: int) -> StepShape:
        """A step's shape for ``n`` active rows: static, a row bucket and the token and frame
        windows' buckets that hold the longest row's tokens and the most own frames (a graph per
        such bucket, so what a step reads grows with what its rows hold: at most twice); eager, the
        rows themselves, the longest row's tokens rounded up to ``WINDOW_STEP`` (so the views last
        several steps) and the most own frames."""
        if self.static:
            window = next(w for w in self.windows if w >= self._longest)
            frames = next(f for f in self.frame_windows if f >= self._frames)
            return StepShape(self.bucket(n), window, frames)
        return StepShape(n, min(self.max_tokens, -(-self._longest // WINDOW_STEP) * WINDOW_STEP), self._frames)

    @property
    def step_shapes(self) -> list[StepShape]:
        """Every shape a static step can take (what the graphs capture and the warm-up runs)."""
        return [StepShape(r, w, f) for r in self.buckets for w in self.windows for f in self.frame_windows]

    def views(self, shape: StepShape) -> Views:
        """The buffers' views for a step of ``shape`` (kept: a static pool's few shapes each keep
        theirs, as the graph captured on them reads them; an eager pool keeps its last)."""
        views = self._views.get(shape)
        if views is None:
            if not self.static:
                self._views.clear()
            views = self._views[shape] = Views.of(self.buffers, slice(0, shape.rows), shape.window, shape.frames)
        return views

    def _process(self, i: int, r: PoolRow, logits: Tensor) -> None:
        """A row's term processors on its own tokens (a batch of one), in ``TextDecoder``'s order."""
        ids = self.buffers.tokens[i : i + 1, : r.length]
        scores = logits[i : i + 1]
        for p in r.processors:
            scores = p(ids, scores)
        logits[i : i + 1] = scores

    def drop(self, row_id: int) -> None:
        """A row leaves without a result (it failed, or its request went away); the others go on."""
        for r in self._rows:
            if r.row.id == row_id:
                # a read in flight is let go (a row joining later may reuse the id); the others'
                # flags stay set on the device for the next read
                self.reads.drop()
                self._leave([r], results=False)
                return
        raise KeyError(f"row {row_id} is not in the decode pool")

    def _leave(
        self, rows: Sequence[PoolRow], *, results: bool = True, copies: tuple[HostRead, Sequence[int]] | None = None
    ) -> list[Finished]:
        """``rows`` leave, together: their results read (the host copies of the read behind at
        ``copies``, else one copy of their tokens now), their hidden states copied out in one go,
        and their slots freed (model/decode/seats.py)."""
        if not rows:
            return []
        buf = self.buffers
        out = []
        if results:
            if copies is not None:
                host, at = copies
                rows_tokens = [host.tokens[j].tolist() for j in at]
                rows_logprobs = [host.logprob[j].tolist() for j in at]
            else:
                index = torch.tensor([r.slot for r in rows], device=self.device)
                rows_tokens = buf.tokens.index_select(0, index).tolist()
                rows_logprobs = buf.logprob.index_select(0, index).tolist()
            hidden = self.seats.hidden(rows)
            for r, kept, tokens, logprobs in zip(rows, hidden, rows_tokens, rows_logprobs, strict=True):
                chosen = tuple(logprobs[r.known : r.length])
                out.append(Finished(r.row.id, tuple(tokens[: r.length]), kept, chosen))
        self.seats.leave(rows, finished=results)
        self._recount()
        return out

    def _recount(self) -> None:
        """The host's per-pool counts after rows joined or left (a step reads them, not the rows)."""
        self._terms = sum(1 for r in self._rows if r.processors)
        self._longest = max((r.length for r in self._rows), default=0)
        self._frames = max((r.frames for r in self._rows), default=0)

    # -- a whole plan -----------------------------------------------------------------------

    def run(
        self,
        rows: Sequence[DecodeRow],
        enc: Tensor,
        mask: Tensor,
        *,
        said: Mapping[int, str] | None = None,
        text_input: bool = False,
        frames: Sequence[int] | None = None,
    ) -> dict[int, Finished]:
        """Every row decoded, by id, in this pool beside any other user's rows
        (model/decode/whole.py ``run_rows``)."""
        return run_rows(self, rows, enc, mask, said=said, text_input=text_input, frames=frames)

    def reset_free(self) -> None:
        """Free slots back to their start values (after a warm-up or capture ran them)."""
        buf = self.buffers
        index = torch.tensor(self.seats.free(), dtype=torch.long, device=self.device)
        buf.length.index_fill_(0, index, 1)
        buf.done.index_fill_(0, index, True)
