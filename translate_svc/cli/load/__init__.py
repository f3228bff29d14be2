"""The load logic of ``translate-svc bench`` (issue 46): real audio at real time through the public
SDK (gRPC) and the OpenAI door (a WebSocket, as any client speaks it), per-segment latency, the
server's own /metrics, and the capacity it implies. ``benchmarks/loadgen.py`` shares ``clips``."""
