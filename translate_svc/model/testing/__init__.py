"""What tests and demos run instead of real weights: the made-up stable translator and the
tiny random-weight checkpoints (SeamlessM4T v2's and the language identifier's).
"""
