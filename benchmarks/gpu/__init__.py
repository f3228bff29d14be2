"""The GPU runbook (prepare.sh, preflight.sh, run.sh) and what its scripts run in Python."""
