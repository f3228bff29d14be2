"""The model's own stages: the encoders, the text decoder, text-to-unit, the vocoder,
language identification, the bundle that loads them (``seamless.py``), and what they share: shapes
and padding, subword tables, terms, languages, loading and the device.
"""
