/**
 * The audio a stream may have to send again: everything after its last final result.
 *
 * A resumed stream (another server, after a drain or a crash) must hear again the audio the lost
 * call had not yet turned into final results, and nothing before it (that would be translated
 * twice). Every chunk the caller sends is kept with its place on the stream's timeline until a
 * final result covers it (`trim`), and `replayFrom` cuts the kept audio at the resume offset: raw
 * encodings exactly at the frame `round(offsetMs * rate / 1000)` (the server's own formula), Opus
 * at the packet that contains the offset (the resume then starts at that packet's first ms).
 * The `leadInMs` before the offset are kept too and sent first (`ResumeFrom.lead_in_ms`), only for
 * the new server's VAD to enter the resume point in the state the lost call's had.
 *
 * Positions are frames at the stream's rate (Opus: 48 kHz). Timestamped packets may come out of
 * order: each is kept in its place on the timeline, so a replay sends them in order. A port of the
 * Python SDK's translate_svc/client/_replay.py (same rules, same tests' cases). Pure, synchronous.
 */

/** One sent message: audio `[start, end)` on the timeline (frames), or a FLUSH (`data` null). */
export interface Chunk {
  readonly seq: number;
  readonly start: number;
  readonly end: number;
  readonly data: Uint8Array | null;
  /** the caller gave `start` (a timestamp); else it follows the previous chunk */
  readonly timestamped: boolean;
}

const SILK = [480, 960, 1920, 2880];
const HYBRID = [480, 960];
const CELT = [120, 240, 480, 960];
const MAX_PACKET_SAMPLES = 5760;

/** Duration of one Opus packet in 48 kHz samples, from its TOC byte (RFC 6716, section 3.1);
 * undefined when it cannot be read. */
export function opusPacketSamples(packet: Uint8Array): number | undefined {
  if (packet.length === 0) return undefined;
  const toc = packet[0]!;
  const config = toc >> 3;
  const frame = config < 12 ? SILK[config % 4]! : config < 16 ? HYBRID[config % 2]! : CELT[config % 4]!;
  const code = toc & 0x3;
  let frames: number;
  if (code === 0) frames = 1;
  else if (code === 1 || code === 2) frames = 2;
  else {
    if (packet.length < 2) return undefined;
    frames = packet[1]! & 0x3f;
    if (frames === 0) return undefined;
  }
  const total = frame * frames;
  return total <= MAX_PACKET_SAMPLES ? total : undefined;
}

/**
 * Chunks sent and not yet covered by a final result, in order. `frameBytes`: bytes per frame (all
 * channels) of a raw encoding; null for Opus (one packet per chunk). `maxSeconds` bounds the span
 * kept: past it the oldest chunks are dropped (a resume can then no longer replay them).
 * `leadInMs` (default 1000, 0..10000): the audio before a resume offset sent again as its lead-in.
 */
export class ReplayBuffer {
  private chunks: Chunk[] = [];
  private nextSeq = 0;
  private endFrame = 0;
  private bytes = 0;
  private readonly packetFrames: number;
  private readonly maxFrames: number | null;
  readonly leadInMs: number;
  /** frames dropped by `maxSeconds` before any final result covered them */
  droppedTo = 0;

  constructor(
    readonly rate: number,
    readonly frameBytes: number | null,
    opts: { packetMs?: number; maxSeconds?: number | null; leadInMs?: number } = {},
  ) {
    if (!(rate > 0)) throw new RangeError("rate must be positive");
    if (frameBytes !== null && !(frameBytes > 0)) throw new RangeError("frameBytes must be positive");
    this.packetFrames = Math.max(1, Math.round(((opts.packetMs ?? 20) * rate) / 1000));
    const max = opts.maxSeconds === undefined ? 300 : opts.maxSeconds;
    this.maxFrames = max === null ? null : Math.round(max * rate);
    this.leadInMs = opts.leadInMs ?? 1000;
    if (!(this.leadInMs >= 0 && this.leadInMs <= 10000)) throw new RangeError("leadInMs must be in 0..10000");
  }

  /** The timeline's end so far, in frames. */
  get end(): number {
    return this.endFrame;
  }

  /** The seq of the last chunk appended (-1 before any). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  get nbytes(): number {
    return this.bytes;
  }

  get length(): number {
    return this.chunks.length;
  }

  kept(): readonly Chunk[] {
    return this.chunks;
  }

  /** The frame where `ms` lies (the server's `round(offset_ms * rate / 1000)`; Python's round
   * halves to even, which at whole ms and the rates allowed never meets a half). */
  frameAt(ms: number): number {
    return Math.round((ms * this.rate) / 1000);
  }

  /** Keep one message; `timestamp`: where its first frame lies (frames since the stream's start). */
  append(data: Uint8Array, timestamp?: number): Chunk {
    if (data.length === 0) throw new RangeError("an audio chunk must not be empty");
    let n: number;
    if (this.frameBytes === null) {
      n = opusPacketSamples(data) ?? this.packetFrames;
    } else {
      if (data.length % this.frameBytes !== 0) {
        throw new RangeError(
          `an audio chunk of ${data.length} bytes is not a whole number of frames of ${this.frameBytes} bytes`,
        );
      }
      n = data.length / this.frameBytes;
    }
    const start = timestamp ?? this.endFrame;
    const chunk: Chunk = { seq: this.nextSeq, start, end: start + n, data: Uint8Array.from(data), timestamped: timestamp !== undefined };
    if (timestamp !== undefined && timestamp < this.endFrame) return this.insert(chunk);
    return this.add(chunk);
  }

  appendFlush(): Chunk {
    return this.add({ seq: this.nextSeq, start: this.endFrame, end: this.endFrame, data: null, timestamped: false });
  }

  /** A packet that arrived out of order: kept in its place, unless it repeats a kept packet or
   * lies before what is kept. Either way it is sent (the server counts it). */
  private insert(chunk: Chunk): Chunk {
    this.nextSeq += 1;
    let i = this.chunks.length;
    while (i > 0 && this.chunks[i - 1]!.start > chunk.start) i -= 1;
    const before = i > 0 ? this.chunks[i - 1]! : undefined;
    if (i === 0 || (before !== undefined && before.start === chunk.start && before.data !== null)) return chunk;
    this.chunks.splice(i, 0, chunk);
    this.bytes += chunk.data?.length ?? 0;
    return chunk;
  }

  private add(chunk: Chunk): Chunk {
    this.nextSeq += 1;
    this.chunks.push(chunk);
    this.endFrame = chunk.end;
    this.bytes += chunk.data?.length ?? 0;
    if (this.maxFrames !== null) {
      while (this.chunks.length > 0 && this.endFrame - this.chunks[0]!.end >= this.maxFrames) {
        const old = this.chunks.shift()!;
        this.bytes -= old.data?.length ?? 0;
        if (old.end > this.droppedTo) {
          if (this.droppedTo === 0) {
            process.emitWarning(
              `the replay buffer holds more than ${Math.round(this.maxFrames / this.rate)} s without a final result: ` +
                "older audio is dropped, and a resumed stream cannot send it again",
            );
          }
          this.droppedTo = old.end;
        }
      }
    }
    return chunk;
  }

  /** A final result (or a drain) covered the audio before `beforeMs`: it is not needed again (but
   * for the lead-in before it). */
  trim(beforeMs: number): void {
    const cut = this.frameAt(Math.max(0, beforeMs - this.leadInMs));
    let k = 0;
    while (k < this.chunks.length && this.chunks[k]!.end <= cut) {
      this.bytes -= this.chunks[k]!.data?.length ?? 0;
      k += 1;
    }
    if (k > 0) this.chunks.splice(0, k);
  }

  /**
   * What a call resuming at `offsetMs` sends first, with `ResumeFrom.offset_ms` (`resumeMs`: where
   * it starts) and `lead_in_ms` (`leadInMs`: how much of it comes before `offsetMs`). It starts up
   * to `leadInMs` before the offset, as much as is kept: raw audio is cut at the exact frame; Opus
   * starts with the packet containing that point, moved back to the packet's start (whole ms,
   * floor). FLUSH markers after the offset stay (those before it were acted on).
   */
  replayFrom(offsetMs: number): { resumeMs: number; leadInMs: number; chunks: Chunk[] } {
    const at = this.frameAt(offsetMs);
    const first = this.chunks.find((c) => c.data !== null)?.start ?? at;
    let resumeMs = Math.min(offsetMs, Math.max(offsetMs - this.leadInMs, 0, Math.ceil((Math.min(first, at) * 1000) / this.rate)));
    const cut = this.frameAt(resumeMs);
    const out: Chunk[] = [];
    for (const c of this.chunks) {
      if (c.data === null) {
        if (c.start > at) out.push(c);
        continue;
      }
      if (c.end <= cut) continue;
      if (c.start >= cut) {
        out.push(c);
        continue;
      }
      if (this.frameBytes === null) {
        resumeMs = Math.floor((c.start * 1000) / this.rate);
        out.push(c);
      } else {
        const k = (cut - c.start) * this.frameBytes;
        out.push({ ...c, start: cut, data: c.data.subarray(k), timestamped: true });
      }
    }
    return { resumeMs, leadInMs: offsetMs - resumeMs, chunks: out };
  }
}
