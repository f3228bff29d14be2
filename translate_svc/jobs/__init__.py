"""Background jobs: hours of audio submitted at once, translated while live streams
leave the engine idle, their results kept on disk and fetched by id.

- ``model.py``: a job's vocabulary (its spec, state, status) and a segment's result as JSON;
- ``store.py``: the durable store (SQLite for jobs and finished segments, the audio and the dubbed
  tracks as files), so hours never sit in memory and a restart resumes from the last finished segment;
- ``redis_store.py`` (its scripts in ``redis_lua.py``): the same in Redis with ``cluster.redis_url``,
  so another pod resumes a dead pod's job; ``keeper.py`` is the seam and picks one; ``tracks.py``
  the files both keep under ``jobs.dir``;
- ``reader.py``: the uploaded audio read in bounded blocks, decoded as a clip is;
- ``desk.py`` (``JobDesk``): the jobs service both ports serve (the jobs door, ``transport/jobs/``,
  only parses each wire into a ``request.py`` ``JobRequest`` and renders the answers): a job's
  spec checked, its creation under the tenant's caps, its upload in parts, status, cancel, deletion;
- ``worker.py``: runs jobs (a stream's pipeline, fed a block at a time when the engine is idle),
  progress, cancel, failure with its reason, the webhooks and the retention sweep.
"""
