"""What a large stored glossary costs a request (issue 73): one server in this process on the test
checkpoint (or ``--model``), its glossaries in SQLite, one glossary of ``--entries`` entries (two
of them said by the texts, the rest not), and ``--calls`` ``TranslateText`` calls of the same texts
each way: plain, the two said entries inline, and the stored glossary by id. Prints the median and
p95 of the call's wall time and of the model time per text (``Timing.model_ms``: the decode with
the glossary's logits processors), so the glossary's per-step cost is the difference.

    python -m benchmarks.tools.glossary_cost --entries 5000 --calls 30
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from tests.support.live_server import make_settings, serving
from tests.support.paths import TEST_MODEL
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

TEXTS = ["the meeting starts at nine", "the report is due on friday"]
SAID = [("meeting", "reunion-glosario"), ("report", "informe-glosario")]


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


async def main(model: Path, entries: int, calls: int) -> None:
    settings = make_settings(model)
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = Path(tempfile.mkdtemp(prefix="glossary-cost-"))
    settings.glossaries.max_entries = max(entries, 10)
    async with serving(settings) as live:
        rows = [f"term{n:05d},traduccion{n:05d},spa" for n in range(entries - len(SAID))]
        rows += [f"{p},{t},spa" for p, t in SAID]
        csv = ("phrase,translation,target_language\n" + "\n".join(rows) + "\n").encode()
        await pb_grpc.GlossariesStub(live.channel).CreateGlossary(
            pb.CreateGlossaryRequest(glossary_id="big", content=pb.GlossaryContent(csv=csv))
        )
        inline = [pb.Term(phrase=p, kind=pb.Term.TRANSLATE, translation=t, target_language="spa") for p, t in SAID]
        ways = {
            "plain": {},
            "inline (2 entries)": {"terms": inline},
            f"stored ({entries} entries)": {"glossaries": ["big"]},
        }
        walls: dict[str, list[float]] = {name: [] for name in ways}
        model_ms: dict[str, list[float]] = {name: [] for name in ways}
        for i in range(calls + 2):  # the ways in turn, so that the machine's load falls on each alike
            for name, kw in ways.items():
                req = pb.TranslateTextRequest(texts=TEXTS, source_language="eng", target_languages=["spa"], **kw)
                started = time.perf_counter()
                reply = await live.stub.TranslateText(req, timeout=120)
                if i >= 2:  # two warm-up rounds
                    walls[name].append((time.perf_counter() - started) * 1000)
                    model_ms[name] += [r.timing.model_ms for r in reply.results]
        for name in ways:
            w, m = walls[name], model_ms[name]
            print(
                f"{name:>24}: wall median {statistics.median(w):7.1f} ms p95 {p95(w):7.1f} ms; "
                f"model per text median {statistics.median(m):7.1f} ms p95 {p95(m):7.1f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=TEST_MODEL)
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.entries, args.calls))
