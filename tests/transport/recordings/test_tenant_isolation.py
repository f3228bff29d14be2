"""The recordings API keeps tenants apart (issue 61): a token lists, fetches and deletes its own
tenant's recordings only; another tenant's recording is answered 404, as one that does not exist
(never 403, which would say it exists); a token without the ``recordings`` permission is refused
403, no token or an unknown one 401. A real server on loopback, a gRPC stream of the recording
tenant, and aiohttp's client on the HTTP port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import recordings as rec
from tests.support.waiting import eventually
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]


async def test_one_tenants_token_cannot_list_fetch_or_delete_anothers(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    s = rec.setup(tmp_path)
    pcm = load_pcm16k(shared_audio / "jfk.flac")[: 16000 * 4]
    async with rec.recording_server(test_model_dir, s) as live:
        got = await rec.stream(live.stub, pcm, rec.ACME, ["spa"])
        rid = got.session_id

        async def listed() -> bool:
            status, body, _ = await rec.api(live, "GET", "/v1/recordings", rec.ACME_READ)
            return status == 200 and any(r["id"] == rid and r["ended_at"] for r in json.loads(body)["recordings"])

        await eventually(listed, "acme's recording listed for acme", deadline_s=60)
        file = f"/v1/recordings/{rid}/files/segments.jsonl"
        assert (await rec.api(live, "GET", file, rec.ACME_READ))[0] == 200

        # another tenant's token: its list is its own, and acme's recording is not found
        status, body, _ = await rec.api(live, "GET", "/v1/recordings", rec.TEXTY_READ)
        assert status == 200 and json.loads(body) == {"recordings": []}
        for method, path in (("GET", f"/v1/recordings/{rid}"), ("GET", file), ("DELETE", f"/v1/recordings/{rid}")):
            status, body, _ = await rec.api(live, method, path, rec.TEXTY_READ)
            assert status == 404, (method, path, status)
            assert json.loads(body)["error"]["code"] == "recording_not_found"
        # ... exactly as an id nobody has
        status, nobody, _ = await rec.api(live, "GET", f"/v1/recordings/{'0' * 32}", rec.TEXTY_READ)
        assert status == 404 and nobody == body
        assert (s.directory / "acme" / rid / "manifest.json").exists()

        # acme's own stream token lacks `recordings` (`*` does not imply it): 403; no token, 401
        status, body, _ = await rec.api(live, "GET", "/v1/recordings", rec.ACME)
        assert status == 403 and "recordings" in json.loads(body)["error"]["message"]
        assert (await rec.api(live, "GET", "/v1/recordings", "not-a-token"))[0] == 401

        # acme deletes its own
        assert (await rec.api(live, "DELETE", f"/v1/recordings/{rid}", rec.ACME_READ))[0] == 204
        assert (await rec.api(live, "GET", f"/v1/recordings/{rid}", rec.ACME_READ))[0] == 404
        assert not (s.directory / "acme" / rid).exists()
