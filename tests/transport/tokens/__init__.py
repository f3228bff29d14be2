"""Tests of the tokens (translate_svc/transport/tokens/): the file's format, the store, authorisation,
the wording of refusals and revocation, one module each."""
