"""Work on untrusted input in processes of its own, never in the server's process nor on a pool it
shares: a file a caller sent is opened, parsed, probed and decoded
by code that trusts it (FFmpeg's demuxers and decoders, libsndfile, a JSON or XML parser), and
such code may be made to allocate gigabytes for a few kB, run for hours on megabytes, or crash.
Here it runs in a process bounded in memory (``RLIMIT_AS``), in CPU per call (``RLIMIT_CPU``) and
in number (per server and per tenant), at a lower priority than the server's threads; what comes
back is plain values (``answers.py``), and a process that a limit kills fails only its call, with a
precise error (``pool.OverLimit``).

- ``worker.py``: the process (``python -m translate_svc.sandbox.worker``): its limits, its calls;
- ``pool.py``: ``Sandbox``, the processes as the event loop uses them (``run`` a call, ``lease``
  a process for a series of calls), and how a call that ended its process fails;
- ``slots.py``: how many run at once, in all and of one tenant (the rest wait, or get 429);
- ``answers.py``: an answer loaded as plain values only;
- ``named.py``: a call's function named by its module, for modules this process must not load.

This module imports nothing: a sandbox process imports the package on its way to ``worker``.

Users: the glossaries' parse processes (``glossaries/book.py``), the jobs' media
(``jobs/media.py``: every open of an uploaded container) and the speech watermark's detector
(``session/calls/detect.py``: a clip decoded and searched, torch loaded there only).
"""
