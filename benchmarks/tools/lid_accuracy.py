"""How often MMS-LID (``model/stages/lid.py``) names the right language: FLEURS test utterances, top choice.

This needs what CI and dev machines lack, so it documents the procedure and fails with a clear
message without them:

1. Real weights: ``translate-svc download-lid-model`` (model_cache/mms-lid-126; ``--repo`` for the
   256 ... 4017-language variants). A random-weight test identifier is accepted, to try this script
   out, but its accuracy is chance and the report says so.
2. FLEURS (``google/fleurs``, CC-BY-4.0), the test split of each language, as laid out in the dataset
   repository: ``<root>/data/<config>/test.tsv`` and ``<root>/data/<config>/audio/test.tar.gz`` (read
   in place) or that archive unpacked beside it (``<root>/data/<config>/audio/test/*.wav``). With
   huggingface_hub's CLI, on a machine with internet access::

       hf download google/fleurs --repo-type dataset --local-dir fleurs \\
           --include "data/en_us/test.tsv" "data/en_us/audio/test.tar.gz" ...   # one pair per language

Run from the repository root::

    python -m benchmarks.tools.lid_accuracy --fleurs fleurs --model model_cache/mms-lid-126 \\
        --languages en_us,es_419,fr_fr,de_de,it_it,pt_br,cmn_hans_cn,ja_jp --per-language 200 \\
        --json out/lid_accuracy.json

The procedure. ``--languages`` are FLEURS configs; each becomes a SeamlessM4T code with the
service's own tag mapping (``en_us`` -> ``eng``, ``cmn_hans_cn`` -> ``cmn``, ``ar_eg`` -> ``arb``;
``config=code`` overrides it). A language the identifier cannot pick is reported and left out. The
first ``--per-language`` utterances of each test.tsv (columns: id, file name, raw transcription,
transcription, characters, samples, gender; 16 kHz WAV) are identified in batches of ``--batch``,
cropped to ``--max-seconds`` as the server does, with every language of the identifier as candidates.
Because ``MmsLid`` restricts its softmax *after* the forward pass, the top choice within any
shortlist is the highest of these scores among its members; so one pass per utterance gives:

- **all**: accuracy of the top choice among all the identifier's languages (126 for mms-lid-126);
- **among the evaluated**: top choice among the ``--languages`` only (what a client that names
  no candidates gets from the server, whose "any" is the languages both models have);
- **2 candidates**: the true language and one other evaluated language, every pair (the typical
  "is it English or Spanish" request); reported overall and per pair, the worst pairs first;
- **4 candidates**: the true language and 3 others drawn at random (``--shortlists`` per utterance,
  ``--seed``), or every such set when there are no more than that.

Plus per-language accuracy (all / among the evaluated) and the most frequent confusions (true ->
chosen, among all languages). Output: tables, and ``--json`` with every figure.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import random
import sys
import tarfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
import typer
from rich.console import Console
from rich.table import Table

logger = logging.getLogger("benchmarks.tools.lid_accuracy")
app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 120)

RATE = 16000
DEFAULT_LANGUAGES = "en_us,es_419,fr_fr,de_de,it_it,pt_br,cmn_hans_cn,ja_jp"
SPLIT = "test"
HOW_TO_GET_FLEURS = (
    'on a machine with internet access: hf download google/fleurs --repo-type dataset --local-dir DIR --include "data/'
    f'<config>/{SPLIT}.tsv" "data/<config>/audio/{SPLIT}.tar.gz"'
)


@dataclass(frozen=True)
class Utterance:
    language: str  # model code
    file_name: str
    audio: np.ndarray


def fleurs_code(spec: str) -> tuple[str, str]:
    """``en_us`` -> (``en_us``, ``eng``) by the service's tag mapping; ``config=code`` as given."""
    from translate_svc.languages import guess_model_code

    config, _, code = spec.strip().partition("=")
    return config, code or guess_model_code(config)


def _tsv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def _wavs(config_dir: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, WAV bytes) of the split: from the unpacked folder if there, else the archive."""
    folder = config_dir / "audio" / SPLIT
    if folder.is_dir():
        for wav in sorted(folder.glob("*.wav")):
            yield wav.name, wav.read_bytes()
        return
    with tarfile.open(config_dir / "audio" / f"{SPLIT}.tar.gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".wav"):
                data = tar.extractfile(member)
                if data is not None:
                    yield Path(member.name).name, data.read()


def check_language(root: Path, config: str) -> None:
    """Fail, saying how to get it, unless FLEURS ``config``'s test split is under ``root``."""
    config_dir = root / "data" / config
    tsv = config_dir / f"{SPLIT}.tsv"
    archive = config_dir / "audio" / f"{SPLIT}.tar.gz"
    if not tsv.is_file() or not (archive.is_file() or (config_dir / "audio" / SPLIT).is_dir()):
        raise typer.BadParameter(
            f"FLEURS {config} is not in {root}: expected {tsv} and {archive} (or it unpacked). Get it "
            + HOW_TO_GET_FLEURS.replace("<config>", config),
            param_hint="--fleurs",
        )


def load_language(root: Path, config: str, code: str, limit: int) -> list[Utterance]:
    config_dir = root / "data" / config
    tsv = config_dir / f"{SPLIT}.tsv"
    wanted = [row[1] for row in _tsv_rows(tsv)][:limit]
    found: dict[str, np.ndarray] = {}
    for name, data in _wavs(config_dir):
        if name in wanted:
            audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            if rate != RATE:
                raise ValueError(f"{config}/{name} is {rate} Hz; FLEURS is 16 kHz")
            found[name] = audio.mean(axis=1)
            if len(found) == len(wanted):
                break
    if len(found) < len(wanted):
        logger.warning("%s: %d of %d utterances of %s found in the audio", config, len(found), len(wanted), tsv)
    return [Utterance(code, name, found[name]) for name in wanted if name in found]


def score(lid: Any, utterances: list[Utterance], batch: int) -> list[dict[str, float]]:
    """Every utterance's probability per language of the identifier (one pass each, batched)."""
    scores: list[dict[str, float]] = []
    for start in range(0, len(utterances), batch):
        chunk = utterances[start : start + batch]
        scores.extend(lid.identify([u.audio for u in chunk], [()] * len(chunk)))
        console.print(f"identified {len(scores)} / {len(utterances)}", end="\r")
    console.print()
    return scores


def top(scores: dict[str, float], shortlist: tuple[str, ...] | list[str]) -> str:
    """The top choice within ``shortlist``: the same as ``identify`` with those candidates."""
    return max(shortlist, key=scores.__getitem__)


def evaluate(
    utterances: list[Utterance], scores: list[dict[str, float]], codes: list[str], shortlists: int, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    hits: dict[str, list[bool]] = defaultdict(list)
    per_language: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    pair_errors: dict[tuple[str, str], list[bool]] = defaultdict(list)
    confusions: Counter[tuple[str, str]] = Counter()
    for u, s in zip(utterances, scores, strict=True):
        others = [c for c in codes if c != u.language]
        chosen = top(s, list(s))
        for name, ok in (("all", chosen == u.language), ("evaluated", top(s, codes) == u.language)):
            hits[name].append(ok)
            per_language[u.language][name].append(ok)
        if chosen != u.language:
            confusions[(u.language, chosen)] += 1
        for other in others:
            ok = top(s, (u.language, other)) == u.language
            hits["2 candidates"].append(ok)
            a, b = sorted((u.language, other))
            pair_errors[(a, b)].append(not ok)
        triples = list(itertools.combinations(others, 3))
        for triple in triples if len(triples) <= shortlists else rng.sample(triples, shortlists):
            hits["4 candidates"].append(top(s, (u.language, *triple)) == u.language)

    def rate(values: list[bool]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "utterances": len(utterances),
        "accuracy": {name: rate(values) for name, values in hits.items()},
        "trials": {name: len(values) for name, values in hits.items()},
        "per_language": {
            code: {name: rate(values) for name, values in by.items()} | {"utterances": len(by["all"])}
            for code, by in sorted(per_language.items())
        },
        "pair_error_rate": {
            f"{a}/{b}": rate(errors)
            for (a, b), errors in sorted(pair_errors.items(), key=lambda kv: -(rate(kv[1]) or 0.0))
        },
        "confusions": [
            {"true": true, "chosen": chosen, "count": n} for (true, chosen), n in confusions.most_common(20)
        ],
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def show(result: dict[str, Any], name: str, test_model: bool) -> None:
    if test_model:
        console.print("[bold yellow]a random-weight test identifier: these figures are chance, not accuracy[/]")
    overall = Table(title=f"{name}: top-choice accuracy on FLEURS {SPLIT} ({result['utterances']} utterances)")
    overall.add_column("candidates")
    overall.add_column("accuracy", justify="right")
    overall.add_column("trials", justify="right")
    for key in ("2 candidates", "4 candidates", "evaluated", "all"):
        if key in result["accuracy"]:
            label = "all the evaluated languages" if key == "evaluated" else key
            overall.add_row(label, _pct(result["accuracy"][key]), str(result["trials"][key]))
    console.print(overall)
    languages = Table(title="per language")
    for column in ("language", "utterances", "among all", "among the evaluated"):
        languages.add_column(column, justify="left" if column == "language" else "right")
    for code, by in result["per_language"].items():
        languages.add_row(code, str(by["utterances"]), _pct(by.get("all")), _pct(by.get("evaluated")))
    console.print(languages)
    pairs = Table(title="2 candidates: error rate per pair, worst first")
    pairs.add_column("pair")
    pairs.add_column("error rate", justify="right")
    for pair, error in list(result["pair_error_rate"].items())[:10]:
        pairs.add_row(pair, _pct(error))
    console.print(pairs)
    confusions = Table(title="most frequent confusions (among all languages)")
    for column in ("true", "chosen", "count"):
        confusions.add_column(column)
    for c in result["confusions"][:10]:
        confusions.add_row(c["true"], c["chosen"], str(c["count"]))
    console.print(confusions)


@app.command()
def main(
    fleurs: Annotated[Path, typer.Option(help="a local copy of google/fleurs (holding data/<config>/...)")],
    model: Annotated[Path, typer.Option(help="an MMS-LID directory")] = Path("model_cache/mms-lid-126"),
    languages: Annotated[
        str, typer.Option(help="FLEURS configs, comma list; config=code overrides the mapping")
    ] = DEFAULT_LANGUAGES,
    per_language: Annotated[int, typer.Option(min=1, help="utterances per language (the first of test.tsv)")] = 200,
    batch: Annotated[int, typer.Option(min=1, help="utterances per identify call")] = 8,
    max_seconds: Annotated[float, typer.Option(help="MmsLid's crop (the server's default: 10)")] = 10.0,
    shortlists: Annotated[int, typer.Option(min=1, help="4-candidate shortlists per utterance")] = 20,
    seed: Annotated[int, typer.Option(help="for the 4-candidate shortlists")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda")] = "cpu",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    """Top-choice accuracy of MMS-LID on FLEURS: 2 and 4 candidates, all languages, confusions."""
    from translate_svc.errors import ModelNotFound

    logging.basicConfig(level=logging.WARNING)
    if not (fleurs / "data").is_dir():
        raise typer.BadParameter(
            f"{fleurs} holds no FLEURS copy (no data/ folder). Get it " + HOW_TO_GET_FLEURS, param_hint="--fleurs"
        )
    pairs = [fleurs_code(spec) for spec in languages.split(",") if spec.strip()]
    for config, _ in pairs:
        check_language(fleurs, config)
    try:
        from translate_svc.model.stages.lid import MmsLid

        lid = MmsLid(model, device, max_seconds=max_seconds)
    except ModelNotFound as e:
        console.print(f"[red]no language identifier:[/] {e}", soft_wrap=True)
        raise typer.Exit(2) from None
    kept = [(config, code) for config, code in pairs if code in lid.languages]
    for config, code in sorted(set(pairs) - set(kept)):
        console.print(f"[yellow]left out {config}: {lid.name} cannot pick {code}[/]")
    codes = sorted({code for _, code in kept})
    if len(codes) < 2:
        raise typer.BadParameter("give at least two languages the identifier can pick", param_hint="--languages")

    utterances = [u for config, code in kept for u in load_language(fleurs, config, code, per_language)]
    result = evaluate(utterances, score(lid, utterances, batch), codes, shortlists, seed)
    show(result, lid.name, lid.info.is_test_model)
    report = {
        "model": lid.name,
        "revision": lid.info.revision,
        "test_model": lid.info.is_test_model,
        "identifier_languages": len(lid.languages),
        "fleurs_configs": dict(kept),
        "split": SPLIT,
        "per_language": per_language,
        "max_seconds": max_seconds,
        "seed": seed,
        **result,
    }
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    app()
