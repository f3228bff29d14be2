"""The text decoder's arithmetic over a pool of slots: what ``SeamlessM4Tv2Decoder.forward`` computes,
step by step, on static buffers. model/decode/loop.py owns the pool; this module only
computes.

Every weight is the loaded model's own: ``embed_tokens`` (scaled), the sinusoidal
``embed_positions`` table, each ``SeamlessM4Tv2DecoderLayer``'s layer norms, its self- and
cross-attention's q/k/v/out projections and its feed-forward network, the final ``layer_norm`` and
the model's ``lm_head``. The order of operations is ``SeamlessM4Tv2DecoderLayer.forward``'s
(pre-norm: self-attention, cross-attention, feed-forward, each added to its residual); attention
is ``scaled_dot_product_attention`` with the layer's own scaling, as the ``sdpa`` implementation
``transformers`` picks by default calls it. Positions follow ``generate``'s incremental decoding:
the token at index ``i`` of a row reads position ``(i + 1) * (token != pad) + pad``.

``Slots`` are the buffers, allocated once for the pool: per slot its self-attention keys and
values over ``max_tokens`` positions, its cross-attention keys and values over ``max_frames``
encoder frames (projected once, when the row joins), its frames' mask, its tokens, its length,
cap and forced length, and its last hidden state at every position (what text-to-unit reads).
The rows being decoded are within slots ``0 .. n-1`` (the pool moves rows down as others leave,
``Slots.move`` and ``Slots.move_rows``: model/decode/seats.py), so a step works on views ``[:n]``:
no gather of any cache, and a captured graph per row-count bucket would see the same addresses at
every replay.

Model thread only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(eq=False)
class Slots:
    """A decode pool's static buffers (see the module docstring); rows ``0 .. n-1`` are the active ones."""

    #: (layers, slots, 2, heads, max_tokens, head_dim): each slot's self-attention keys and values
    self_kv: Tensor
    #: (layers, slots, 2, heads, max_frames, head_dim): its encoder output's keys and values,
    #: projected at admission
    cross_kv: Tensor
    #: (slots, max_frames) in the model's dtype: 0 on the row's own encoder frames, -inf on padding
    #: (an additive mask: CPU's attention takes it faster than a boolean one)
    frames_bias: Tensor
    #: (slots, max_tokens + 1) long: the row's sequence as ``generate`` writes it (start, language,
    #: text); the last column is scratch: a finished row's masked steps write there or past its end
    tokens: Tensor
    #: (slots,) long: tokens written so far (the prompt counted)
    length: Tensor
    #: (slots,) long: the sequence's greatest length (prompt plus the row's token cap)
    limit: Tensor
    #: (slots,) long: benchmark mode's forced text length (model/stages/forced.py), -1: none
    force_len: Tensor
    #: (slots,) long: the tokens the row joined with (its prompt and any forced prefix): a step at a
    #: position before them writes the known token, not its choice (the static path's admission
    #: feeds them through the steps: model/decode/loop.py); 0 on a free slot
    known: Tensor
    #: (slots, max_tokens, hidden) the decoder's last hidden state (after its final layer norm) at
    #: each position: the token there as the input, so text-to-unit needs no second decoder pass
    hidden: Tensor
    #: (slots,) bool: the row emitted EOS or reached its limit (sticky: its later steps are masked);
    #: True on a free slot
    done: Tensor
    #: (slots, max_tokens + 1) float32 (the last column scratch, as ``tokens``'): at each position a
    #: step wrote, the log-probability of the token chosen there under the model's own distribution
    #: (before any processor: terms, forced lengths)
    logprob: Tensor
    #: (slots,) long: 0 .. slots-1 (a step's row index, made once)
    rows: Tensor

    @classmethod
    def allocate(
        cls, decoder: Any, slots: int, max_tokens: int, max_frames: int, device: torch.device, dtype: torch.dtype
    ) -> Slots:
        layers = len(decoder.layers)
        attn = decoder.layers[0].self_attn
        heads, head_dim = int(attn.num_heads), int(attn.head_dim)
        hidden = int(decoder.layer_norm.normalized_shape[0])

        def zeros(*shape: int, kind: torch.dtype = dtype) -> Tensor:
            return torch.zeros(shape, dtype=kind, device=device)

        return cls(
            self_kv=zeros(layers, slots, 2, heads, max_tokens, head_dim),
            cross_kv=zeros(layers, slots, 2, heads, max_frames, head_dim),
            # a free slot reads one frame and one position (finite values: a static step runs free
            # slots of its row bucket too, and writes only their own buffers)
            frames_bias=torch.full((slots, max_frames), float("-inf"), dtype=dtype, device=device).index_fill_(
                1, torch.tensor([0], device=device), 0.0
            ),
            tokens=zeros(slots, max_tokens + 1, kind=torch.long),
            length=torch.ones(slots, dtype=torch.long, device=device),
            limit=zeros(slots, kind=torch.long),
            force_len=torch.full((slots,), -1, dtype=torch.long, device=device),
            known=zeros(slots, kind=torch.long),
            hidden=zeros(slots, max_tokens, hidden),
            done=torch.ones(slots, dtype=torch.bool, device=device),  # a free slot is finished: never grows
            logprob=zeros(slots, max_tokens + 1, kind=torch.float32),
            rows=torch.arange(slots, device=device),
        )

    def nbytes(self) -> int:
        """The pool's memory: every buffer's bytes."""
        return sum(getattr(self, f.name).nbytes for f in fields(self))

    def move(self, src: int, dst: int, tokens: int, frames: int) -> None:
        """Slot ``src``'s row into slot ``dst`` (a row left ``dst``; the pool stays packed): its first
        ``tokens`` positions and ``frames`` encoder frames, and every per-row value."""
        self.self_kv[:, dst, :, :, :tokens] = self.self_kv[:, src, :, :, :tokens]
        self.cross_kv[:, dst, :, :, :frames] = self.cross_kv[:, src, :, :, :frames]
        self.hidden[dst, :tokens] = self.hidden[src, :tokens]
        self.logprob[dst, :tokens] = self.logprob[src, :tokens]
        for f in fields(self):
            buf = getattr(self, f.name)
            if f.name not in ("self_kv", "cross_kv", "hidden", "logprob", "rows"):
                buf[dst] = buf[src]

    def move_rows(self, src: Tensor, dst: Tensor, tokens: int, frames: int) -> None:
        """Slots ``src``'s rows into slots ``dst`` (index tensors of one length, no slot in both),
        as ``move`` does each: every buffer in one gather and one scatter, whatever the rows (a
        batch of moves costs 22 launches; ``move``, 11 a row)."""
        for buf, dim, width in ((self.self_kv, 1, tokens), (self.cross_kv, 1, frames)):
            window = buf[..., :width, :]
            window.index_copy_(dim, dst, window.index_select(dim, src))
        for f in fields(self):
            if f.name in ("self_kv", "cross_kv", "rows"):
                continue
            buf = getattr(self, f.name)
            if f.name in ("hidden", "logprob"):
                buf = buf[:, :tokens]
            buf.index_copy_(0, dst, buf.index_select(0, src))


def _heads(x: Tensor, heads: int) -> Tensor:
    """(rows, length, hidden) -> (rows, heads, length, head_dim), as ``SeamlessM4Tv2Attention`` splits it."""
    return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)


def _merge(x: Tensor, length: int) -> Tensor:
    """(rows, heads, length, head_dim) -> (rows * length, hidden) (one position: a view)."""
    if length == 1:
        return x.view(x.shape[0], -1)
    return x.transpose(1, 2).reshape(x.shape[0] * length, -1)


@dataclass(frozen=True, eq=False)
class LayerWeights:
    """One ``SeamlessM4Tv2DecoderLayer``'s weights, referenced (not copied) from the loaded model, but
    for its self-attention's q, k and v projections, concatenated once into one (a copy: one matrix
    product a step instead of three)."""

    heads: int
    scaling: float
    norms: tuple[tuple[Tensor, Tensor, float], ...]  # self-attention, cross-attention, ffn layer norms
    #: each projection as (bias, weight transposed): ``torch.addmm``'s arguments, what ``F.linear``
    #: computes on a 2-D input
    qkv: tuple[Tensor, Tensor]
    out: tuple[Tensor, Tensor]
    cross_q: tuple[Tensor, Tensor]
    cross_out: tuple[Tensor, Tensor]
    fc1: tuple[Tensor, Tensor]
    fc2: tuple[Tensor, Tensor]
    act: Any
    #: the upstream layer (its cross-attention's k and v projections run once per row, at admission)
    layer: Any


@dataclass(frozen=True, eq=False)
class Weights:
    """The text decoder's weights as the step reads them (see the module docstring)."""

    embed: Tensor
    embed_scale: float
    pad: int
    positions: Tensor
    layers: tuple[LayerWeights, ...]
    final_norm: tuple[Tensor, Tensor, float]
    lm_head: Tensor

    @classmethod
    def of(cls, decoder: Any, lm_head: Any) -> Weights:
        """``decoder``'s (``SeamlessM4Tv2Decoder``, its position table grown as needed first) and the
        model's ``lm_head``."""

        def norm(m: Any) -> tuple[Tensor, Tensor, float]:
            return m.weight, m.bias, float(m.eps)

        def lin(m: Any) -> tuple[Tensor, Tensor]:
            return m.bias, m.weight.t()  # addmm's (bias, mat2): a transposed view, no copy

        out = []
        for layer in decoder.layers:
            a, c = layer.self_attn, layer.cross_attention
            qkv = (
                torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]),
                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).t(),
            )
            act = layer.ffn.act
            out.append(
                LayerWeights(
                    heads=int(a.num_heads),
                    scaling=float(a.scaling),
                    norms=(
                        norm(layer.self_attn_layer_norm),
                        norm(layer.cross_attention_layer_norm),
                        norm(layer.ffn_layer_norm),
                    ),
                    qkv=qkv,
                    out=lin(a.out_proj),
                    cross_q=lin(c.q_proj),
                    cross_out=lin(c.out_proj),
                    fc1=lin(layer.ffn.fc1),
                    fc2=lin(layer.ffn.fc2),
                    act=torch.relu if isinstance(act, torch.nn.ReLU) else act,
                    layer=layer,
                )
            )
        return cls(
            embed=decoder.embed_tokens.weight,
            embed_scale=float(decoder.embed_tokens.embed_scale),
            pad=int(decoder.padding_idx),
            positions=decoder.embed_positions.weights,
            layers=tuple(out),
            final_norm=norm(decoder.layer_norm),
            lm_head=lm_head.weight.t(),
        )


def _bias(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """A boolean mask as an additive one (0 where allowed, -inf elsewhere)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(~allowed, float("-inf"))


def _norm(x: Tensor, w: tuple[Tensor, Tensor, float]) -> Tensor:
    return torch.layer_norm(x, (x.shape[-1],), w[0], w[1], w[2])


def project_cross(w: Weights, slots: Slots, index: Tensor, enc: Tensor) -> None:
    """Every layer's cross-attention keys and values of ``enc`` (rows, frames, hidden), written once
    into the slots ``index`` (rows,) names: what ``generate``'s cache holds after its first step.
    By index, not by a range of slots, so that the writes' addresses are the buffers' own (a
    captured admission replays them); rows that pad a row bucket name a real row's slot and hold
    its copy (the same values written twice)."""
    frames = enc.shape[1]
    for i, lw in enumerate(w.layers):
        attn = lw.layer.cross_attention
        kv = torch.stack((_heads(attn.k_proj(enc), lw.heads), _heads(attn.v_proj(enc), lw.heads)), dim=1)
        slots.cross_kv[i, :, :, :, :frames].index_copy_(0, index, kv)


def embed(w: Weights, tokens: Tensor, index: Tensor) -> Tensor:
    """The decoder's input for ``tokens`` (rows, length) at indices ``index`` (same shape): scaled token
    embeddings plus the sinusoidal positions ``generate``'s incremental decoding reads."""
    positions = torch.where(tokens.ne(w.pad), index + (w.pad + 1), w.pad)  # (index + 1) * not pad + pad
    pos = w.positions.index_select(0, positions.reshape(-1)).view(*tokens.shape, w.positions.shape[-1])
    out: Tensor = F.embedding(tokens, w.embed, w.pad) * w.embed_scale + pos
    return out


@dataclass(frozen=True)
class StepShape:
    """A decode step's shape: the rows it runs (a row bucket on the static path), the token
    positions its self-attention reads and the encoder frames its cross-attention reads."""

    rows: int
    window: int
    frames: int


def doubling(first: int, top: int) -> tuple[int, ...]:
    """``first``, twice that, ... while below ``top``, then ``top``."""
    out = []
    w = first
    while w < top:
        out.append(w)
        w *= 2
    return (*out, top)


def powers_of_two(top: int) -> list[int]:
    return [1 << k for k in range(top.bit_length()) if 1 << k <= top]


@dataclass(frozen=True, eq=False)
class Views:
    """What a forward over slots ``rows`` reads of the buffers, per layer: views made once per (rows,
    window, frames) and reused while those stay (a step's rows and bounds change only when rows
    join or leave, or a row outgrows the window), so a layer costs no slicing."""

    #: per layer, the slots' self-attention cache (rows, 2, heads, max_tokens, head_dim): written
    kv: tuple[Tensor, ...]
    #: per layer, its keys and values over the first ``window`` positions
    keys: tuple[Tensor, ...]
    values: tuple[Tensor, ...]
    #: per layer, the slots' encoder keys and values over the first ``frames`` frames
    cross_keys: tuple[Tensor, ...]
    cross_values: tuple[Tensor, ...]
    #: (rows, 1, 1, frames) additive: each row's own frames
    cross_mask: Tensor
    #: (rows, 1): the slots' indices (the cache writes' first index)
    row_index: Tensor
    #: (max_tokens, window) additive: row ``a`` lets a query at position ``a`` see positions ``<= a``
    #: (a step's self-attention mask is its rows' lines of it)
    causal: Tensor

    @classmethod
    def of(cls, slots: Slots, rows: slice, window: int, frames: int) -> Views:
        kv = tuple(slots.self_kv[i, rows] for i in range(slots.self_kv.shape[0]))
        cross = tuple(slots.cross_kv[i, rows] for i in range(slots.cross_kv.shape[0]))
        n = kv[0].shape[0]
        device = slots.frames_bias.device
        index = torch.arange(max(kv[0].shape[3], window), device=device)
        seen = index[:window].unsqueeze(0) <= index[: kv[0].shape[3]].unsqueeze(1)
        return cls(
            kv=kv,
            keys=tuple(t[:, 0, :, :window] for t in kv),
            values=tuple(t[:, 1, :, :window] for t in kv),
            cross_keys=tuple(t[:, 0, :, :frames] for t in cross),
            cross_values=tuple(t[:, 1, :, :frames] for t in cross),
            cross_mask=slots.frames_bias[rows, :frames].view(n, 1, 1, frames),
            row_index=slots.rows[:n].unsqueeze(1),
            causal=_bias(seen, slots.frames_bias.dtype),
        )


def layers(w: Weights, views: Views, hidden: Tensor, at: Tensor, self_mask: Tensor) -> Tensor:
    """The decoder's layers and final layer norm on ``hidden`` (n, length, hidden), the inputs of the
    slots of ``views`` at positions ``at`` (n, length): each layer writes their keys and values into
    the slots' cache there, then attends over the cached positions where ``self_mask`` (n, 1,
    length, window; additive: 0 or -inf) allows, and over each slot's own encoder frames."""
    n, length = hidden.shape[0], hidden.shape[1]
    row_index = views.row_index
    hidden = hidden.reshape(n * length, -1)  # every row's every position: one matrix product each
    for i, lw in enumerate(w.layers):
        x = _norm(hidden, lw.norms[0])
        qkv = torch.addmm(lw.qkv[0], x, lw.qkv[1]).view(n, length, 3, lw.heads, -1)
        views.kv[i][row_index, :, :, at] = qkv[:, :, 1:]  # (n, length, 2, heads, head_dim) at (row, position)
        y = F.scaled_dot_product_attention(
            qkv[:, :, 0].transpose(1, 2), views.keys[i], views.values[i], attn_mask=self_mask, scale=lw.scaling
        )
        hidden = hidden + torch.addmm(lw.out[0], _merge(y, length), lw.out[1])

        x = _norm(hidden, lw.norms[1])
        q = torch.addmm(lw.cross_q[0], x, lw.cross_q[1]).view(n, length, lw.heads, -1).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, views.cross_keys[i], views.cross_values[i], attn_mask=views.cross_mask, scale=lw.scaling
        )
        hidden = hidden + torch.addmm(lw.cross_out[0], _merge(y, length), lw.cross_out[1])

        x = _norm(hidden, lw.norms[2])
        hidden = hidden + torch.addmm(lw.fc2[0], lw.act(torch.addmm(lw.fc1[0], x, lw.fc1[1])), lw.fc2[1])
    return _norm(hidden, w.final_norm).view(n, length, -1)


def prefill(w: Weights, slots: Slots, first: int, tokens: Tensor, known: Tensor, frames: int) -> None:
    """Slots ``first .. first+rows`` start: every token of ``tokens`` (rows, width; each row's first
    ``known`` valid, the rest padding) but each row's last is fed (causally) so its keys, values and
    hidden states are cached; the last is the first step's input. A row's padding positions are
    written too and masked until its own tokens overwrite them. The eager path's admission (the
    static path feeds known tokens through its steps instead: ``Slots.known``)."""
    rows, width = tokens.shape
    device = tokens.device
    fed = max(width - 1, 1)
    index = torch.arange(fed, device=device).unsqueeze(0).expand(rows, fed)
    pos = torch.arange(fed, device=device)
    causal = _bias(pos.unsqueeze(0) <= pos.unsqueeze(1), w.embed.dtype).view(1, 1, fed, fed)
    h = embed(w, tokens[:, :fed], index)
    out = layers(w, Views.of(slots, slice(first, first + rows), fed, frames), h, index, causal)
    slots.hidden[first : first + rows, :fed] = out
    slots.length[first : first + rows] = known


def step(w: Weights, slots: Slots, views: Views) -> tuple[Tensor, Tensor]:
    """One decode step of slots ``0 .. n-1`` (``views``' rows): each row's last token is fed at its
    index, its keys and values cached there, its hidden state kept there. Returns the rows' logits
    (n, vocab) in float32 (as ``generate`` reads them) and the positions fed (n,). The views' window
    (at least every row's length) and frames (at least every row's own) bound the attention; the
    static step (model/decode/loop.py) uses the pool's maxima over a row bucket."""
    n, window = views.keys[0].shape[0], views.keys[0].shape[2]
    at = (slots.length[:n] - 1).unsqueeze(1)  # (n, 1)
    token = slots.tokens[:n].gather(1, at)
    h = embed(w, token, at)
    self_mask = views.causal.index_select(0, at[:, 0]).view(n, 1, 1, window)
    out = layers(w, views, h, at, self_mask)
    slots.hidden[slots.rows[:n], at[:, 0]] = out[:, 0]
    logits = torch.mm(out[:, 0], w.lm_head).float()
    return logits, at[:, 0]


def choose(
    slots: Slots, n: int, scores: Tensor, eos: int, at: Tensor, raw: Tensor | None = None, *, forced: bool = True
) -> Tensor:
    """Greedy choice for slots ``0 .. n-1`` from their (processed) scores, on the device: benchmark
    mode's forced lengths (no EOS before a row's length, then only EOS; ``forced=False``: the caller
    knows no row has one, and that work is skipped), argmax, the token written after ``at``, the
    length grown, and ``done`` set where the token is EOS or the row reached its limit.

    ``done`` is sticky: a row that finished stays finished and its later steps (the host reads the
    flags only every few steps, model/decode/loop.py) are masked: its length no longer grows and
    nothing is written at its positions, so its sequence ends at its EOS or cap whatever runs
    after. The write index is kept inside the buffers (a free slot a static step runs steps too).

    The chosen token's log-probability under the model's own distribution (``raw``: the logits
    before the host's term processors; None: ``scores`` as ``step`` returned them) is written
    beside it (``Slots.logprob``), on the device: no host sync. It shares the argmax's pass: one
    ``max`` gives the token and the shift, then one pass of ``exp`` sums, in place (``scores`` and
    ``raw`` are the step's own and are spent). Returns the tokens (n,)."""
    done = slots.done[:n]
    length = slots.length[:n]
    if forced:  # every row has a forced length (benchmark mode forces them all; a free slot is done)
        before = (length - 2).lt(slots.force_len[:n])  # text tokens written (a forced prefix's included)
        kept = scores[:, eos].clone()
        scores[:, eos].masked_fill_(before, float("-inf"))
        best, token = scores.max(-1)
        scores[:, eos] = kept  # the model's own scores again, for the log-probability
        token = torch.where(before, token, eos)
    else:
        best, token = scores.max(-1)
    # a position before the tokens the row joined with takes the known one (the static path's
    # admission: model/decode/loop.py); its log-probability is never read
    rows, nxt = slots.rows[:n], at + 1
    token = torch.where(nxt.lt(slots.known[:n]), slots.tokens[rows, nxt], token)
    source = scores if raw is None else raw
    if raw is None and not forced:
        top = chosen = best  # the argmax's own maximum: the chosen logit and the shift
    else:
        chosen = source.gather(1, token.unsqueeze(1))[:, 0]
        top = torch.maximum(best, kept) if raw is None else raw.amax(-1)
    # log_softmax(source)[token] = (chosen - top) - log(sum(exp(source - top))), computed in place
    spread = source.sub_(top.unsqueeze(1)).exp_().sum(-1).log_()
    # a finished row's length stays, so its masked steps write one past its end (at most the
    # buffers' scratch column): nothing of the row changes
    slots.logprob[rows, nxt] = (chosen - top) - spread
    slots.tokens[rows, nxt] = token
    length += ~done
    done |= token.eq(eos) | length.ge(slots.limit[:n])
    length.clamp_(max=slots.tokens.shape[1] - 1)  # a guard: only a free slot's could pass it
    return token


def check_greedy(gen: object) -> None:
    """The loop is greedy decoding with no processor of ``generate``'s own: a generation config that
    asks for more (beams, sampling, penalties, banned or suppressed tokens, a minimum length) would
    make ``generate`` differ, so it is refused, not ignored."""
    asked = {
        "num_beams": getattr(gen, "num_beams", 1) not in (None, 1),
        "do_sample": bool(getattr(gen, "do_sample", False)),
        "repetition_penalty": getattr(gen, "repetition_penalty", 1.0) not in (None, 1.0),
        "no_repeat_ngram_size": bool(getattr(gen, "no_repeat_ngram_size", 0)),
        "min_length": bool(getattr(gen, "min_length", 0)),
        "min_new_tokens": bool(getattr(gen, "min_new_tokens", None)),
        "bad_words_ids": bool(getattr(gen, "bad_words_ids", None)),
        "suppress_tokens": bool(getattr(gen, "suppress_tokens", None)),
        "begin_suppress_tokens": bool(getattr(gen, "begin_suppress_tokens", None)),
        "forced_bos_token_id": getattr(gen, "forced_bos_token_id", None) is not None,
        "forced_eos_token_id": getattr(gen, "forced_eos_token_id", None) is not None,
    }
    bad = sorted(k for k, v in asked.items() if v)
    if bad:
        raise NotImplementedError(f"the decode loop is plain greedy; the generation config asks for {', '.join(bad)}")
