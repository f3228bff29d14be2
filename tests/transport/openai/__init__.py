"""Tests of the OpenAI-compatible door (translate_svc/transport/openai/)."""
