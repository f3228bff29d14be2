"""Our PerTh modules hold the resemble-perth wheel's trained checkpoint exactly: every entry loads
with ``strict=True`` into modules of the same shapes, the spectrogram parameters are the wheel's
``hparams.yaml``, a network of another shape, an extra entry, another window or other bytes than the
pinned file's are refused, and the whole signal path marks and reads as the wheel's own code does."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.support.paths import REPO
from translate_svc.marking import perth
from translate_svc.marking.perth import (
    CHECKPOINT_SHA256,
    PARAMS,
    PerthChanged,
    PerthNetwork,
    checkpoint_path,
    load_network,
    network_state,
)

pytestmark = [pytest.mark.unit]


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    checkpoint = torch.load(checkpoint_path(), map_location="cpu", weights_only=True)
    assert checkpoint["step"] == 250_000
    return dict(checkpoint["model"])


def test_the_checkpoint_loads_strictly_without_importing_the_package() -> None:
    network, step = load_network()
    assert step == 250_000
    assert not any(p.requires_grad for p in network.parameters())
    assert sum(p.numel() for p in network.parameters()) == 9_346_694  # four stacks of seven convolutions
    # its Python imports torchaudio and librosa; only its files are read
    assert not [m for m in sys.modules if m == "perth" or m.startswith("perth.")]


def test_the_spectrogram_is_the_one_the_wheel_was_trained_on() -> None:
    hp = yaml.safe_load((checkpoint_path().parent / "hparams.yaml").read_text())
    assert (hp["sample_rate"], hp["n_fft"], hp["hop_size"], hp["window_size"], hp["window_fn"]) == (
        PARAMS.sample_rate,
        PARAMS.n_fft,
        PARAMS.hop,
        PARAMS.window,
        "hann",
    )
    assert (hp["stft_magnitude_min"], hp["max_wmark_freq"], hp["hidden_size"]) == (
        PARAMS.magnitude_floor,
        PARAMS.max_mark_hz,
        PARAMS.hidden,
    )
    assert (PARAMS.bins, PARAMS.subband, PARAMS.floor_db, PARAMS.db_span) == (1025, 128, -180.0, 195.0)


def test_a_network_of_another_shape_is_refused(state: dict[str, torch.Tensor]) -> None:
    with pytest.raises(RuntimeError, match="size mismatch"):
        PerthNetwork(replace(PARAMS, hidden=128)).load_state_dict(network_state(state), strict=True)
    with pytest.raises(RuntimeError, match="size mismatch"):
        PerthNetwork(replace(PARAMS, max_mark_hz=4000.0)).load_state_dict(network_state(state), strict=True)


def test_an_entry_the_modules_lack_or_miss_is_refused(state: dict[str, torch.Tensor]) -> None:
    extra = {**network_state(state), "decoder.extra_layers.0.conv.bias": torch.zeros(2)}
    with pytest.raises(RuntimeError, match="Unexpected key"):
        PerthNetwork().load_state_dict(extra, strict=True)
    missing = {k: v for k, v in network_state(state).items() if not k.startswith("decoder.fast_layers.")}
    with pytest.raises(RuntimeError, match="Missing key"):
        PerthNetwork().load_state_dict(missing, strict=True)


def test_a_checkpoint_trained_on_another_window_is_refused(state: dict[str, torch.Tensor], tmp_path: Path) -> None:
    other = {**state, "ap.spectrogram.window": torch.hamming_window(2048)}
    path = tmp_path / "hamming.pth.tar"
    torch.save({"model": other, "step": 1}, path)
    with pytest.raises(ValueError, match="periodic Hann"):
        load_network(path)


class _Reads(type(Path())):  # type: ignore[misc]
    """A path whose reads return ``damaged`` bytes first (a read damaged on its way), then the file's."""

    damaged: list[bytes]

    def read_bytes(self) -> bytes:
        return self.damaged.pop(0) if self.damaged else super().read_bytes()


def _reads(monkeypatch: pytest.MonkeyPatch, *damaged: bytes) -> None:
    path = _Reads(checkpoint_path())
    path.damaged = list(damaged)
    monkeypatch.setattr(perth, "checkpoint_path", lambda: path)


def test_the_pinned_digest_is_the_installed_wheels_checkpoint() -> None:
    import hashlib

    assert hashlib.sha256(checkpoint_path().read_bytes()).hexdigest() == CHECKPOINT_SHA256


def test_a_damaged_read_is_read_again_and_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    good = checkpoint_path().read_bytes()
    at = len(good) // 2  # one byte of the weights
    _reads(monkeypatch, good[:at] + bytes([good[at] ^ 1]) + good[at + 1 :])
    with caplog.at_level("WARNING", logger=perth.__name__):
        _, step = load_network()
    assert step == 250_000
    assert "gave other bytes" in caplog.text and "read again" in caplog.text


def test_other_bytes_twice_are_refused_with_the_wheel_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    good = checkpoint_path().read_bytes()
    other = good[:-1] + bytes([good[-1] ^ 1])
    _reads(monkeypatch, other, other)
    with pytest.raises(PerthChanged, match=r"is not the checkpoint resemble-perth==1\.0\.1 ships .*force-reinstall"):
        load_network()


def test_our_modules_mark_and_read_as_the_wheels_own_code(shared_audio: Path, tmp_path: Path) -> None:
    """The wheel's watermarker (its Python, torchaudio's two STFT wrappers stood in by the torch
    calls they make: tests/support/perth_reference.py), in its own process, on the same 32 kHz
    speech: our mark equals its within float rounding (measured 1.1e-6 on jfk.flac; its output is
    cut to whole hops, ours keeps the length), and both read the same presence scores."""
    import soxr

    from tests.support.speech import read_16k
    from translate_svc.marking.watermarker import shared

    speech = read_16k(shared_audio / "jfk.flac")
    # a second of digital silence inside: the frames that carry no mark and are not read
    with_gap = np.concatenate([speech[: 3 * 16000], np.zeros(16000, np.float32), speech[3 * 16000 : 5 * 16000]])
    clean = soxr.resample(with_gap, 16000, 32000).astype(np.float32)
    np.save(tmp_path / "clean.npy", clean)
    subprocess.run(
        [sys.executable, "-m", "tests.support.perth_reference", str(tmp_path / "clean.npy"), str(tmp_path / "out.npz")],
        check=True,
        cwd=REPO,
        timeout=300,
    )
    theirs = np.load(tmp_path / "out.npz")
    marker = shared()
    ours = marker.mark(clean, 32000)
    assert ours.shape == clean.shape
    reference = theirs["marked"]
    np.testing.assert_allclose(ours[: len(reference)], reference, atol=2e-5)
    assert marker.detect(reference, 32000).probability == pytest.approx(float(theirs["marked_score"]), abs=1e-4)
    assert marker.detect(clean, 32000).probability == pytest.approx(float(theirs["clean_score"]), abs=1e-4)
