"""After the decode: a batch's outputs (``outputs.py``: the profanity filter, text-to-unit
and the vocoder, word timings, confidence), the finish on a thread of its own (``stage.py``), and
the word timer, timings, confidence and profanity they use.
"""
