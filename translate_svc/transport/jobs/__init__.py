"""Background jobs on the HTTP port (issue 73): ``/v1/jobs`` (``routes.py``), their results as
documents (``render.py``); what both ports do in ``desk.py`` (a URL job's audio is fetched by the
worker that claims it: ``jobs/intake.py``)."""
