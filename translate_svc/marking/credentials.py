"""Content credentials: a C2PA manifest in the files the service makes, saying they were generated
by it (an IPTC ``trainedAlgorithmicMedia`` creation), with the model's name, the source's hash and
the time, signed with the operator's key; and the same manifest read back and checked
(``c2pa-python``, the Content Authenticity Initiative's bindings of c2pa-rs).

A manifest says who signed a file and what they claimed of it; it is lost when a file is
re-encoded or stripped (the speech watermark, ``watermarker.py``, is what survives that), and a
signature proves the file unchanged since, not that the claim is true (docs/security.md, "Marked
speech"). Synchronous and CPU-bound (hashing the whole file): run off the event loop."""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the IPTC digital source type of media a trained model made (C2PA's ``c2pa.created`` action)
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
#: our own assertion: what made the file and from what
GENERATION_LABEL = "org.translate_svc.generation"
#: signing algorithms c2pa-rs takes, by the names settings use
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")
#: container kinds a manifest can be written into, by the content types the service sends
SIGNABLE = {
    "audio/wav": "audio/wav",
    "audio/mpeg": "audio/mpeg",
    "audio/flac": "audio/flac",
    "video/mp4": "video/mp4",
    "video/quicktime": "video/quicktime",
}


class CredentialsError(ValueError):
    """The operator's signing key or certificates cannot sign (said at start, with what to fix)."""


@dataclass(frozen=True)
class Made:
    """What a file says of how it was made."""

    #: the file's name or title (``dub-spa.wav``)
    title: str
    #: the model that made its speech (a Hugging Face id or a local checkpoint's name)
    model: str
    #: the SHA-256 (hex) of the source the speech translates, when the service holds it
    source_sha256: str | None = None
    #: the languages spoken in it
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Credentials:
    """A file's manifest as read back: ``state`` is c2pa's validation state (``Trusted``: valid and
    signed by a certificate under a trust anchor given; ``Valid``: intact, the signer not trusted
    here; ``Invalid``: changed since it was signed, or a bad signature), ``failures`` its failure
    codes (``assertion.dataHash.mismatch``: the bytes changed)."""

    state: str
    generated: bool
    model: str | None
    source_sha256: str | None
    created: str | None
    issuer: str | None
    signer: str | None
    failures: tuple[str, ...]
    #: the languages its speech is in, as the signer said
    languages: tuple[str, ...] = ()


class Signer:
    """Signs files with the operator's key: ``cert_chain_pem`` the signing certificate then its
    issuers (PEM), ``key_pem`` its private key (PEM, PKCS#8), ``tsa_url`` a time-stamp authority
    (RFC 3161) to count the signature's time, or None. A bad key or chain fails here, at start
    (``CredentialsError``), by signing a test file."""

    def __init__(
        self, cert_chain_pem: str, key_pem: str, *, alg: str = "es256", tsa_url: str | None = None, generator: str
    ) -> None:
        if alg not in ALGORITHMS:
            raise CredentialsError(f"credentials.alg: one of {', '.join(ALGORITHMS)} (got {alg!r})")
        self._chain = cert_chain_pem
        self._key = key_pem
        self._alg = alg
        self._tsa = tsa_url
        self.generator = generator
        self._check()

    def _signer(self) -> Any:
        import c2pa

        info = c2pa.C2paSignerInfo(self._alg.encode(), self._chain.encode(), self._key.encode(), self._tsa)
        return c2pa.Signer.from_info(info)

    def _check(self) -> None:
        try:
            signed = self.sign_bytes(_silence_wav(), "audio/wav", Made("check", "check"))
        except Exception as e:  # c2pa-rs's own errors: a key that does not match, a chain it refuses
            raise CredentialsError(f"the content credentials' key and certificates cannot sign: {e}") from None
        if read_bytes(signed, "audio/wav") is None:
            raise CredentialsError("a file signed with the content credentials' key has no manifest read back")

    def manifest(self, made: Made) -> dict[str, Any]:
        generation: dict[str, Any] = {"model": made.model, "created": _now()}
        if made.source_sha256:
            generation["source_sha256"] = made.source_sha256
        if made.languages:
            generation["languages"] = list(made.languages)
        return {
            "claim_generator_info": [{"name": self.generator}],
            "title": made.title,
            "assertions": [
                {
                    "label": "c2pa.actions.v2",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                                "softwareAgent": {"name": f"{self.generator} ({made.model})"},
                            }
                        ]
                    },
                },
                {"label": GENERATION_LABEL, "data": generation},
            ],
        }

    def sign_bytes(self, data: bytes, content_type: str, made: Made) -> bytes:
        """``data`` (a whole file of ``content_type``, one of ``SIGNABLE``) with a manifest in it."""
        import io

        import c2pa

        out = io.BytesIO()
        with c2pa.Builder(self.manifest(made)) as builder, self._signer() as signer:
            builder.sign(signer, SIGNABLE[content_type], io.BytesIO(data), out)
        return out.getvalue()

    def sign_file(self, path: Path, content_type: str, made: Made) -> int:
        """The file at ``path`` signed in place (written beside it, then moved over it): its new size."""
        import c2pa

        part = path.with_name(f"{path.name}.{secrets.token_hex(4)}.signing")
        try:
            with open(path, "rb") as src, open(part, "w+b") as dst:
                with c2pa.Builder(self.manifest(made)) as builder, self._signer() as signer:
                    builder.sign(signer, SIGNABLE[content_type], src, dst)
            os.replace(part, path)
        finally:
            part.unlink(missing_ok=True)
        return path.stat().st_size


def sniff(data: bytes) -> str | None:
    """The content type of a file that can carry a manifest, from its first bytes; None for others."""
    head = data[:12]
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    return None


def read_any(data: bytes, trust_anchors_pem: str | None = None) -> Credentials | None:
    """The manifest in a file of any kind (``sniff``); one that cannot be read is ``Invalid``
    (``manifest.unreadable``), not an error: the file is a caller's, and may be made to fail."""
    content_type = sniff(data)
    if content_type is None:
        return None
    try:
        return read_bytes(data, content_type, trust_anchors_pem)
    except Exception as e:  # c2pa-rs's errors on a damaged or hostile manifest
        return Credentials("Invalid", False, None, None, None, None, None, (f"manifest.unreadable: {str(e)[:200]}",))


def read_bytes(data: bytes, content_type: str, trust_anchors_pem: str | None = None) -> Credentials | None:
    """The manifest in ``data`` (a file of ``content_type``), checked; None when it carries none
    (or its kind cannot carry one)."""
    import io

    import c2pa

    if content_type not in SIGNABLE:
        return None
    context = None
    if trust_anchors_pem:
        context = c2pa.Context.from_dict(
            {"verify": {"verify_trust": True}, "trust": {"trust_anchors": trust_anchors_pem}}
        )
    reader = c2pa.Reader.try_create(SIGNABLE[content_type], io.BytesIO(data), context=context)
    if reader is None:
        return None
    with reader:
        manifest = reader.get_active_manifest()
        if manifest is None:
            return None
        results = reader.get_validation_results() or {}
        state = reader.get_validation_state() or "Invalid"
    return _credentials(manifest, results, state)


def _credentials(manifest: dict[str, Any], results: dict[str, Any], state: str) -> Credentials:
    generated = False
    generation: dict[str, Any] = {}
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data", {})
        if label.startswith("c2pa.actions"):
            generated |= any(
                a.get("action") == "c2pa.created" and a.get("digitalSourceType") == TRAINED_ALGORITHMIC_MEDIA
                for a in data.get("actions", [])
            )
        elif label == GENERATION_LABEL:
            generation = data
    signature = manifest.get("signature_info") or {}
    failures = tuple(f.get("code", "") for f in (results.get("activeManifest") or {}).get("failure", []))
    return Credentials(
        state=state,
        generated=generated,
        model=generation.get("model"),
        source_sha256=generation.get("source_sha256"),
        created=generation.get("created"),
        issuer=signature.get("issuer"),
        signer=signature.get("common_name"),
        failures=failures,
        languages=tuple(generation.get("languages", ())),
    )


def _silence_wav() -> bytes:
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(320))
    return out.getvalue()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
