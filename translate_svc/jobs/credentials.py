"""A job's files signed as they are made for a caller (a dubbed track, a dubbed video): the
operator's content credentials (``marking/credentials.py``) with the job's model and languages.
Synchronous: on a file thread."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from translate_svc.marking.credentials import SIGNABLE, Made, Signer


class JobCredentials:
    """``signer`` signs; ``model`` names the loaded model (read when a file is signed: the model
    card is known once the engine has loaded); ``digest_of`` a job's upload's SHA-256, the source
    a file names (``JobFiles.digest_of``)."""

    def __init__(self, signer: Signer, model: Callable[[], str], digest_of: Callable[[str], str | None]) -> None:
        self.signer = signer
        self._model = model
        self._digest_of = digest_of

    def signs(self, content_type: str) -> bool:
        """Whether files of ``content_type`` can carry a manifest (WAV, MP3, FLAC, MP4; not Matroska)."""
        return content_type in SIGNABLE

    def sign(self, path: Path, content_type: str, job_id: str, title: str, languages: tuple[str, ...]) -> int:
        """``path``, made from job ``job_id``'s upload, signed in place; its new size."""
        made = Made(title, self._model(), self._digest_of(job_id), languages)
        return self.signer.sign_file(path, content_type, made)
