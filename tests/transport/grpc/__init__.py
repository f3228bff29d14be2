"""Tests of the gRPC door (translate_svc/transport/grpc/) and the gRPC port."""
