"""The fast runner in a serving dtype against a float32 reference on the same device (issue 70's
tolerance figures: "on CUDA in bf16, token agreement with an fp32 reference").

    python -m benchmarks.tools.agreement --model M --device cuda --dtype bfloat16 --json OUT

Real speech is cut into segments by the server's own segmenter (VAD); each segment decodes in the
transcript's language and every target. Two parts, each dtype through the code the server runs:

1. **Tokens** (model/decode/loop.py, the loop the fast runner decodes with): every row's tokens in
   the dtype against float32, each from its own dtype's speech encoder. For a row that differs, the
   float32 model's own logits after the reference's tokens up to the first difference: the gap
   between the two tokens chosen there, relative to the larger logit. A small gap is a near-tie that
   the dtype's rounding may flip; a large one would be a defect.
2. **Speech** (model/runner.py ``SeamlessRunner`` with the fast runner's ``LoopDecoder``, as the
   server makes it): each segment's texts and waveforms; for rows whose texts agree, the speech
   length's difference in the vocoder's frames (one frame: the samples one unit frame becomes).

Random weights (no real checkpoint here) make ties likelier than a trained model's, so the share
of identical rows is a floor, not the model's figure. Nothing is timed.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from benchmarks.tools.loadgen.clips import load_clips
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from benchmarks.tools.profile_stages import segments_of
from tests.support.near_ties import first_difference, next_logits, relative_gap
from tests.support.paths import TEST_MODEL

app = typer.Typer(add_completion=False)

#: relative gaps the report counts rows under (the tests' float32 near-tie is 1e-4)
GAPS = (1e-3, 1e-2, 5e-2)


def summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)],
        "max": ordered[-1],
    }


def encode(stages: Any, audio: Sequence[np.ndarray]) -> tuple[Any, Any]:
    import torch

    batch = stages.speech_encoder.features([stages.extract_features(a) for a in audio])
    with torch.inference_mode():
        return stages.speech_encoder.encode(batch), batch.mask


def loop_tokens(
    stages: Any, audio: Sequence[np.ndarray], languages: Sequence[str], slots: int
) -> dict[int, tuple[int, ...]]:
    """Every segment in every language through the decode loop: tokens by row (segment-major)."""
    import torch

    from translate_svc.model.decode.loop import DecodeLoop
    from translate_svc.model_api.rows import bare_rows

    enc, mask = encode(stages, audio)
    items = [k for k in range(len(audio)) for _ in languages]
    plan = bare_rows(
        [lang for _ in audio for lang in languages],
        [()] * len(items),
        [len(audio[k]) / 16000 for k in items],
    )
    index = torch.tensor(items, device=enc.device)
    loop = DecodeLoop(stages.decoder, slots=slots, max_frames=enc.shape[1])
    with torch.inference_mode():
        done = loop.run(plan.rows, enc.index_select(0, index), mask.index_select(0, index))
    return {row_id: tuple(f.tokens) for row_id, f in done.items()}


def compare_tokens(
    ref_stages: Any,
    audio: Sequence[np.ndarray],
    languages: Sequence[str],
    ref: dict[int, tuple[int, ...]],
    got: dict[int, tuple[int, ...]],
) -> dict[str, Any]:
    rows, gaps, positions, lengths = [], [], [], []
    for row_id in sorted(ref):
        theirs, ours = ref[row_id], got[row_id]
        if ours == theirs:
            continue
        at = first_difference(ours, theirs)
        segment = row_id // len(languages)
        entry: dict[str, Any] = {
            "row": row_id,
            "segment": segment,
            "language": languages[row_id % len(languages)],
            "at": at,
            "tokens": [len(ours), len(theirs)],
        }
        if at < min(len(ours), len(theirs)):
            enc, mask = encode(ref_stages, [audio[segment]])
            logits = next_logits(ref_stages.model, enc, mask, theirs[:at])
            entry["gap"] = relative_gap(logits, ours[at], theirs[at])
            gaps.append(entry["gap"])
        positions.append(at)
        lengths.append(len(ours) - len(theirs))
        rows.append(entry)
    total = len(ref)
    return {
        "rows": total,
        "identical": total - len(rows),
        "identical_share": (total - len(rows)) / total if total else None,
        "first_difference": summary([float(p) for p in positions]),
        "gap": summary(gaps),
        "gap_under": {str(g): sum(x < g for x in gaps) for g in GAPS},
        "token_count_difference": summary([float(abs(x)) for x in lengths]),
        "differing": rows,
    }


def runner_outputs(
    stages: Any, audio: Sequence[np.ndarray], targets: Sequence[str], slots: int, batch: int
) -> list[Any]:
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model_api.requests import ModelInput

    graphs = stages.device.type == "cuda"  # as the server makes it (app.py)
    runner = SeamlessRunner(
        stages, LoopDecoder(stages.decoder, stages.processor, slots=slots, static=graphs, graphs=graphs)
    )
    items = [ModelInput(a, tuple(targets), None, speech=True) for a in audio]
    out = []
    for k in range(0, len(items), batch):
        out += runner.run(items[k : k + batch])
    return out


def compare_speech(ref: list[Any], got: list[Any], targets: Sequence[str], hop: int) -> dict[str, Any]:
    transcripts = sum(a.transcript == b.transcript for a, b in zip(ref, got, strict=True))
    same_text, frames, shares = 0, [], []
    for a, b in zip(ref, got, strict=True):
        for lang in targets:
            if a.texts.get(lang) != b.texts.get(lang):
                continue
            same_text += 1
            wa, wb = a.waveforms.get(lang), b.waveforms.get(lang)
            if wa is not None and wb is not None:
                frames.append(abs(len(wa) - len(wb)) / hop)
                shares.append(abs(len(wb) - len(wa)) / max(len(wa), 1))
    return {
        "segments": len(ref),
        "transcripts_identical": transcripts,
        "target_texts": len(ref) * len(targets),
        "target_texts_identical": same_text,
        "speech_frames_apart": summary(frames),
        #: the length difference as a share of the reference's length
        "speech_length_apart": summary(shares),
        "speech_within_one_frame": sum(f <= 1 for f in frames),
        "speech_compared": len(frames),
    }


def vocoder_hop(stages: Any) -> int:
    """Samples one vocoder input frame becomes (the product of HiFi-GAN's upsampling strides)."""
    return int(np.prod([int(u.stride[0]) for u in stages.model.vocoder.hifi_gan.upsampler]))


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "cpu",
    dtype: Annotated[
        str, typer.Option(help="the dtype held to float32: bfloat16 or float16 (float32: the tool's own check)")
    ] = "bfloat16",
    files: Annotated[str, typer.Option(help="speech files, comma list (else ../shared/audio)")] = DEFAULT_FILES,
    segments: Annotated[int, typer.Option(min=1, help="segments compared at most")] = 48,
    source: Annotated[str, typer.Option(help="the transcript's language")] = "eng",
    targets: Annotated[str, typer.Option(help="target languages, comma list")] = "spa,fra",
    slots: Annotated[int, typer.Option(min=1, help="the decode pool's slots")] = 64,
    batch: Annotated[int, typer.Option(min=1, help="segments a runner batch")] = 16,
    speech: Annotated[bool, typer.Option(help="part 2: the runner end to end, with speech")] = True,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    import torch

    from translate_svc import logging_setup
    from translate_svc.model.stages.seamless import SeamlessStages

    logging_setup.configure("WARNING")
    clips = load_clips(tuple(f.strip() for f in files.split(",") if f.strip()))
    audio = [s for c in clips for s in segments_of(c.pcm)][:segments]
    langs = [source, *(t.strip() for t in targets.split(",") if t.strip())]
    ref_stages = SeamlessStages(model, device=device, dtype="float32")
    stages = SeamlessStages(model, device=device, dtype=dtype, exact_rows=False)
    torch.manual_seed(0)
    result: dict[str, Any] = {
        "command": sys.argv,
        "model": str(model),
        "device": str(stages.device),
        "dtype": str(stages.dtype),
        "segments": len(audio),
        "seconds": sum(len(a) for a in audio) / 16000,
        "languages": langs,
    }
    ref = loop_tokens(ref_stages, audio, langs, slots)
    got = loop_tokens(stages, audio, langs, slots)
    result["tokens"] = compare_tokens(ref_stages, audio, langs, ref, got)
    t = result["tokens"]
    typer.echo(
        f"tokens: {t['identical']} of {t['rows']} rows identical ({t['identical_share']:.1%}); "
        f"first difference at {t['first_difference']}; fp32 gap there {t['gap']}, under {t['gap_under']}"
    )
    if json_path is not None:  # now and at the end: a run cut short keeps the tokens' figures
        json_path.write_text(json.dumps(result, indent=1))
    if speech:
        tgts = langs[1:]
        result["speech"] = compare_speech(
            runner_outputs(ref_stages, audio, tgts, slots, batch),
            runner_outputs(stages, audio, tgts, slots, batch),
            tgts,
            vocoder_hop(ref_stages),
        )
        s = result["speech"]
        typer.echo(
            f"speech: transcripts identical {s['transcripts_identical']} of {s['segments']}, target texts "
            f"{s['target_texts_identical']} of {s['target_texts']}; of those, speech within one frame "
            f"{s['speech_within_one_frame']} of {s['speech_compared']} (frames apart {s['speech_frames_apart']}; "
            f"share of the length {s['speech_length_apart']})"
        )
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    app()
