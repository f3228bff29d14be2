"""A row that left a decode pool finished (``DecodeLoop.step``, ``DecodeLoop.admit``): what the
pool's users (the stepping decoder, a whole plan's run) take from it. Frozen; any thread."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass(frozen=True, eq=False)
class Finished:
    """A row that finished: what ``generate`` returns for it alone, and its hidden states."""

    id: int
    #: the decoder start, the language token, the text and its last token (EOS, or the one its
    #: cap stopped at): ``generate``'s sequence for the row, without padding
    tokens: tuple[int, ...]
    #: (len(tokens) - 1, hidden): the decoder's last hidden state with each token but the last as
    #: the input: ``text_decoder(input_ids=sequence[:-1]).last_hidden_state``, what t2u reads
    hidden: Tensor
    #: the log-probability of each token the loop chose (those after the prompt and a forced
    #: prefix: ``tokens[-len(logprobs):]``), under the model's own distribution (before the term
    #: processors): ``log_softmax(logits)[token]`` of the step that chose it
    logprobs: tuple[float, ...] = ()
