"""Content credentials' settings (``Settings.credentials``): the operator's key that signs a C2PA
manifest into the files the service makes (``marking/credentials.py``, docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, model_validator


class CredentialsSettings(BaseModel):
    """Both files or neither: without them files carry no manifest (start-up says so); with them a
    key and chain that cannot sign stop the server at start."""

    #: PEM: the signing certificate, then the certificates that issued it (C2PA's profile: not a CA,
    #: digitalSignature, an extended key usage such as emailProtection or documentSigning)
    cert_file: Path | None = None
    #: PEM (PKCS#8): the signing certificate's private key
    key_file: Path | None = None
    alg: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    #: an RFC 3161 time-stamp authority that countersigns each manifest's time; None: the time is
    #: the server's own claim
    tsa_url: str | None = None
    #: PEM: the CAs under which a manifest the detector reads back is ``Trusted`` (else ``Valid``:
    #: intact, its signer not known here)
    trust_anchors_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> CredentialsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("credentials.cert_file and credentials.key_file go together: set both, or neither")
        return self
