"""The load logic of ``translate-svc bench`` (issue 46; in the client distribution since issue 57):
real audio at real time through the public SDK (gRPC) and the OpenAI door (a WebSocket, as any
client speaks it), per-segment latency and per-commit lag, the server's own /metrics, and the
capacity it implies. ``benchmarks/tools/loadgen/`` shares ``clips``."""
