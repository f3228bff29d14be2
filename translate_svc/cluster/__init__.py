"""What crosses streams: one seam (``store.py``), three implementations (``memory.py``,
the node's hub, Redis), picked by ``choose.py``. ``session/`` sees ``store.py`` only."""
