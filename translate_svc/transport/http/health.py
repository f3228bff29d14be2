"""Health on the HTTP port, for an L7 balancer or an HTTP probe in front of it: the same
states as the gRPC port's health (``grpc.health.v1``, which stays the manifests' probe), no token.

- ``GET /healthz``: liveness. 200 while the model serves; 503 while it loads, after its worker
  died, and while draining. It never follows the cluster store: a lost Redis restarts no pod.
- ``GET /readyz``: readiness. 200 when new calls are taken; 503 while loading, draining, or while
  the cluster store is lost under ``cluster.on_redis_loss = "refuse"``. Under ``"node"`` a lost
  store is ready but degraded (200, ``"cluster_store": "down"``).

Each answers a small JSON object: ``status`` (``serving``, ``degraded``, ``not_serving``), the
``cluster_store`` (``up`` or ``down``) and ``on_redis_loss``; a 503 carries ``Retry-After``. A
route set of the HTTP port (``door.py``); the host sets its states (``transport/host.py``). Event
loop only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from translate_svc.transport.http.door import Served

LIVE = "/healthz"
READY = "/readyz"


class HealthRoutes:
    """The two endpoints and the states they answer from (a ``RouteSet``). Event loop only."""

    def __init__(self, on_redis_loss: str) -> None:
        self.on_redis_loss = on_redis_loss
        #: the model serves (``set_serving``), the port drains, the cluster store is reached
        self.serving = False
        self.draining = False
        self.store_up = True

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(LIVE, self._live)
        router.add_get(READY, self._ready)

    def describe(self, served: Served) -> list[str]:
        return []

    async def stop(self) -> None:
        """Nothing held open."""

    def _body(self, ok: bool) -> dict[str, str]:
        status = "not_serving" if not ok else ("serving" if self.store_up else "degraded")
        return {
            "status": status,
            "cluster_store": "up" if self.store_up else "down",
            "on_redis_loss": self.on_redis_loss,
        }

    def _answer(self, ok: bool) -> web.Response:
        if ok:
            return web.json_response(self._body(True))
        return web.json_response(self._body(False), status=503, headers={"Retry-After": "1"})

    async def _live(self, request: web.Request) -> web.Response:
        return self._answer(self.serving and not self.draining)

    async def _ready(self, request: web.Request) -> web.Response:
        store_ok = self.store_up or self.on_redis_loss == "node"
        return self._answer(self.serving and not self.draining and store_ok)
