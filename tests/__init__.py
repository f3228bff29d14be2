"""The tests, one folder per room of translate_svc (README.md: the map, the markers, tests/support)."""
