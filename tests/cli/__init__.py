"""Tests of the translate-svc command: the operator's (cli/) and the client's (client_cli/)."""
