"""Marking synthetic speech as machine-generated: an imperceptible watermark added to every voice
the service makes, and a detector that finds it (``watermarker``), with Resemble AI's trained PerTh
implicit network (``perth``) run by our own torch modules and spectrograms."""
