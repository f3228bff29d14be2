"""One stream's life from audio to engine jobs and back to ordered events: the timeline, the reorder
window, the VAD bridge, segments, captions, simultaneous commits, speakers, the ear."""
