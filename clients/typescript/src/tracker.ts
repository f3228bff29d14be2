/**
 * Which events of a stream reach the caller, across the calls of a resumed stream (pure).
 *
 * A resumed call repeats some of what the lost call said: the audio after the last final result is
 * sent again, so its speech events, live captions and (after a crash) even segments the caller
 * already has may come again. The tracker lets each through once: a segment whose id was delivered
 * is dropped; a caption or a commit of a segment whose final was delivered is dropped (a resumed
 * call's commits of the open segment start over: the first per target is marked `restart`); speech
 * events alternate started/ended with non-decreasing offsets (on each channel of a stream of
 * separate channels). It also knows where a lost stream
 * resumes: the end of the last final result, or a drain's `resume_offset_ms`. A segment that came
 * back UNAVAILABLE (its server's model worker died) is delivered but does not count as done.
 * A port of the Python SDK's translate_svc/client/_tracker.py.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import { type Commit, type InterimResult, type SegmentResult, type SpeechEvent, SpeechEvent_Type } from "./gen/translate_svc/api/v1/translate";

export class StreamTracker {
  /** the id the next segment must have (every smaller one was delivered) */
  nextSegmentId = 0;
  /** audio before this (ms, original timeline) produced every result it will: resume here */
  committedMs = 0;
  /** per channel (0: mixed; 1, 2: a stream of separate channels): speech open, its last event's offset */
  private speechState = new Map<number, [boolean, number]>();
  private committed = new Set<string>();
  private restarting = new Set<string>();

  /** speech is open (on some channel) */
  get speechOpen(): boolean {
    for (const [open] of this.speechState.values()) if (open) return true;
    return false;
  }

  get resumeOffsetMs(): number {
    return this.committedMs;
  }

  /** True: deliver it (new); false: a repeat from a resumed call. */
  segment(seg: SegmentResult): boolean {
    if (seg.segmentId < this.nextSegmentId) return false;
    this.nextSegmentId = seg.segmentId + 1;
    this.committed = new Set([...this.committed].filter((k) => segOf(k) > seg.segmentId));
    this.restarting = new Set([...this.restarting].filter((k) => segOf(k) > seg.segmentId));
    if ((seg.status?.code ?? 0) !== GrpcStatus.UNAVAILABLE) this.committedMs = Math.max(this.committedMs, seg.endMs);
    return true;
  }

  interim(caption: InterimResult): boolean {
    return caption.segmentId >= this.nextSegmentId;
  }

  /** Deliver (true restart: it starts its segment's text over on a resumed call), or null: a repeat. */
  commit(c: Commit): { restart: boolean } | null {
    if (c.segmentId < this.nextSegmentId) return null;
    const key = `${c.segmentId}/${c.targetLanguage}`;
    this.committed.add(key);
    if (this.restarting.delete(key)) return { restart: true };
    return { restart: false };
  }

  /** A resumed call starts: the open segments' commits will start over on it. */
  newCall(): void {
    for (const k of this.committed) this.restarting.add(k);
    this.committed = new Set();
  }

  speech(ev: SpeechEvent): boolean {
    const started = ev.type === SpeechEvent_Type.SPEECH_STARTED;
    const [open, lastMs] = this.speechState.get(ev.channel ?? 0) ?? [false, -1];
    if (ev.offsetMs < lastMs || started === open) return false;
    this.speechState.set(ev.channel ?? 0, [started, ev.offsetMs]);
    return true;
  }

  /** A server ended the call with DRAINING: everything before `resumeOffsetMs` is done. */
  drained(resumeOffsetMs: number): void {
    this.committedMs = Math.max(this.committedMs, resumeOffsetMs);
  }

  /** A marker that changes whenever the stream moved on (for counting resumes in a row). */
  progress(): string {
    return `${this.nextSegmentId}/${this.committedMs}`;
  }
}

function segOf(key: string): number {
  return Number(key.slice(0, key.indexOf("/")));
}
