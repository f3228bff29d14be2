"""Sessions over a real engine on the fake runner (``fake_runner.py``), as the session tests open
them: a ``SessionManager`` whose engine batches up to four jobs, and the format their streams
send (16 kHz LINEAR16 mono). The VAD is the test's: the real one (``session/conftest.py``'s
``vad_worker``), or a scripted one (``fake_vad.py``)."""

from __future__ import annotations

from tests.support.fake_runner import FakeRunner
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.session import SessionManager
from translate_svc.settings import EngineSettings, LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.worker import VadWorker


async def make_manager(runner: FakeRunner, vad_worker: VadWorker, **limits: float) -> SessionManager:
    """A manager over a started engine on ``runner``, with ``limits`` (``LimitsSettings``' fields)."""
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(max_batch_size=4, max_wait_ms=5)))
    await engine.start(warmup=False)
    return SessionManager(engine, vad_worker, SegmenterConfig(), LimitsSettings(**limits))


#: 16 kHz LINEAR16 mono
FMT = AudioFormat(AudioEncoding.LINEAR16, 16000, 1)
