"""The text decoder's loop: one decode step's arithmetic on slot buffers (``step.py``),
the pool of rows that join and leave (``loop.py``), its read behind (``reads.py``), its warm-up
(``warm.py``), its CUDA graphs (``graphs.py``) and a plan's rows through it (``batch.py``). The
running decode of many jobs, which also prefills and finishes them, is one floor up
(model/stepping.py).
"""
