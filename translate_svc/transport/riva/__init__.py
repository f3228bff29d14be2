"""The Riva-compatible door (``server.riva``): NVIDIA Riva's translation and streaming recognition
services on the gRPC port, converted to the stream core (docs/riva-compat.md)."""
