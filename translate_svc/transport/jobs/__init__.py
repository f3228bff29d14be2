"""Background jobs on the HTTP port (issue 73): ``/v1/jobs`` (``routes.py``), their results as
documents (``render.py``) and a job's audio fetched from an https URL by the MCP door's rules
(``fetch.py``)."""
