/** The client's pure parts, with plain values: the replay buffer and the tracker (ports of the
 * Python SDK's, checked on the cases its docs state), RetryInfo parsing, addresses, option checks. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { isLocal, parseTargets, AddressRotation } from "../src/addresses";
import { RetryInfo } from "../src/gen/google/rpc/error_details";
import { Status } from "../src/gen/google/rpc/status";
import { type SegmentResult, SpeechEvent_Type } from "../src/gen/translate_svc/api/v1/translate";
import { opusPacketSamples, ReplayBuffer } from "../src/replay";
import { DEFAULT_RETRY, retryDelayFromMetadata, retryDelayMs } from "../src/retry";
import { StreamTracker } from "../src/tracker";
import { TranslateClient } from "../src";

const pcm = (frames: number): Uint8Array => new Uint8Array(frames * 2);
const seg = (id: number, start: number, end: number, code = 0): SegmentResult =>
  ({ segmentId: id, startMs: start, endMs: end, status: code ? { code, message: "", details: [] } : undefined }) as SegmentResult;

describe("ReplayBuffer", () => {
  test("raw audio is cut at the exact frame of the offset; flushes after it stay", () => {
    const b = new ReplayBuffer(16000, 2, { maxSeconds: null, leadInMs: 0 });
    b.append(pcm(1600)); // 0..100 ms
    b.append(pcm(1600)); // 100..200 ms
    b.appendFlush();
    b.append(pcm(1600)); // 200..300 ms
    const { resumeMs, chunks } = b.replayFrom(150);
    assert.equal(resumeMs, 150);
    assert.deepEqual(
      chunks.map((c) => [c.start, c.end, c.data?.length ?? null]),
      [
        [2400, 3200, 1600], // the second half of the second chunk, as a timestamped packet
        [3200, 3200, null],
        [3200, 4800, 3200],
      ],
    );
    assert.equal(chunks[0]!.timestamped, true);
    b.trim(150);
    assert.equal(b.length, 3); // the chunk holding 150 ms is still needed
    b.trim(200);
    assert.deepEqual(
      b.kept().map((c) => c.start),
      [3200],
    ); // what ends at 200 ms (the flush there included) is covered
    assert.equal(b.nbytes, 3200);
  });

  test("Opus resumes at the start of the packet holding the offset, its length read from the TOC", () => {
    const b = new ReplayBuffer(48000, null, { maxSeconds: null, leadInMs: 0 });
    const packet20ms = Uint8Array.of(0x78, 0); // config 15 (hybrid 20 ms), one frame
    assert.equal(opusPacketSamples(packet20ms), 960);
    assert.equal(opusPacketSamples(Uint8Array.of(0x7b, 0x03)), 2880); // code 3, three frames
    for (let i = 0; i < 5; i++) b.append(packet20ms);
    const { resumeMs, chunks } = b.replayFrom(50);
    assert.equal(resumeMs, 40);
    assert.deepEqual(
      chunks.map((c) => c.start),
      [1920, 2880, 3840],
    );
  });

  test("a resume sends the lead-in before the offset: kept past the finals, no flush before the offset", () => {
    const b = new ReplayBuffer(16000, 2, { maxSeconds: null }); // the default lead-in: 1000 ms
    for (let i = 0; i < 10; i++) b.append(pcm(1600)); // 0..1000 ms
    b.appendFlush(); // at 1000 ms: acted on by the lost call
    for (let i = 0; i < 10; i++) b.append(pcm(1600)); // 1000..2000 ms
    b.trim(1500); // a final ended at 1500 ms: the 1000 ms before it stay for the lead-in
    assert.deepEqual(b.kept()[0]!.start, 8000);
    const { resumeMs, leadInMs, chunks } = b.replayFrom(1500);
    assert.deepEqual([resumeMs, leadInMs], [500, 1000]);
    assert.equal(chunks[0]!.start, 8000);
    assert.ok(chunks.every((c) => c.data !== null)); // the flush at 1000 ms is not sent again
    assert.equal(chunks.reduce((n, c) => n + c.end - c.start, 0), 24000); // 500..2000 ms, exactly
    const early = new ReplayBuffer(16000, 2, { maxSeconds: null });
    early.append(pcm(1600));
    assert.deepEqual(
      (({ resumeMs, leadInMs }) => [resumeMs, leadInMs])(early.replayFrom(60)),
      [0, 60],
    ); // the lead-in is what there is
  });

  test("an out-of-order packet is kept in its place; a repeat is not kept twice", () => {
    const b = new ReplayBuffer(16000, 2, { maxSeconds: null });
    b.append(pcm(160), 0);
    b.append(pcm(160), 320);
    b.append(pcm(160), 160); // late, inside the window
    b.append(pcm(160), 160); // a duplicate
    assert.deepEqual(
      b.kept().map((c) => c.start),
      [0, 160, 320],
    );
    assert.equal(b.lastSeq, 3);
  });

  test("a chunk that is not whole frames is refused", () => {
    assert.throws(() => new ReplayBuffer(16000, 2).append(new Uint8Array(3)), /whole number of frames/);
  });
});

describe("StreamTracker", () => {
  test("repeats of a resumed call are dropped; an UNAVAILABLE segment is not done", () => {
    const t = new StreamTracker();
    assert.ok(t.segment(seg(0, 0, 1000)));
    assert.equal(t.resumeOffsetMs, 1000);
    assert.ok(!t.segment(seg(0, 0, 1000)));
    assert.ok(t.segment(seg(1, 1200, 2000, 14))); // delivered, but its span is translated again
    assert.equal(t.resumeOffsetMs, 1000);
    assert.equal(t.nextSegmentId, 2);
    t.drained(2500);
    assert.equal(t.resumeOffsetMs, 2500);
    assert.ok(!t.interim({ segmentId: 1 } as never));
    assert.ok(t.interim({ segmentId: 2 } as never));
  });

  test("speech events alternate; a resumed call's commits of the open segment start over", () => {
    const t = new StreamTracker();
    const ev = (type: SpeechEvent_Type, offsetMs: number, channel = 0) => ({ type, offsetMs, channel });
    assert.ok(t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 100)));
    assert.ok(!t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 100)));
    assert.ok(t.speech(ev(SpeechEvent_Type.SPEECH_ENDED, 900)));
    assert.ok(!t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 500))); // before the last one
    // a stream of separate channels: each channel's events alternate on their own
    assert.ok(t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 300, 1)));
    assert.ok(t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 200, 2)));
    assert.ok(!t.speech(ev(SpeechEvent_Type.SPEECH_STARTED, 300, 1)));
    assert.ok(t.speech(ev(SpeechEvent_Type.SPEECH_ENDED, 700, 2)) && t.speechOpen);
    const c = { segmentId: 0, targetLanguage: "spa" } as never;
    assert.deepEqual(t.commit(c), { restart: false });
    t.newCall();
    assert.deepEqual(t.commit(c), { restart: true });
    assert.deepEqual(t.commit(c), { restart: false });
    t.segment(seg(0, 0, 1000));
    assert.equal(t.commit(c), null);
  });
});

describe("retries", () => {
  test("the server's RetryInfo (grpc-status-details-bin) is read in ms", () => {
    const info = RetryInfo.encode({ retryDelay: { seconds: 3, nanos: 250_000_000 } }).finish();
    const status = Status.encode({
      code: 8,
      message: "quota",
      details: [
        { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Uint8Array.of(1, 2) },
        { typeUrl: "type.googleapis.com/google.rpc.RetryInfo", value: info },
      ],
    }).finish();
    const md = new Metadata();
    md.set("grpc-status-details-bin", Buffer.from(status));
    assert.equal(retryDelayFromMetadata(md), 3250);
    assert.equal(retryDelayFromMetadata(new Metadata()), undefined);
    assert.equal(retryDelayMs(DEFAULT_RETRY, 1, 3250), 3250);
    assert.equal(retryDelayMs(DEFAULT_RETRY, 1, 10 * 60_000), DEFAULT_RETRY.maxRetryDelayMs);
  });

  test("without a hint: exponential backoff with jitter, capped", () => {
    assert.equal(retryDelayMs(DEFAULT_RETRY, 1, undefined, () => 0.5), 200);
    assert.equal(retryDelayMs(DEFAULT_RETRY, 3, undefined, () => 0.5), 800);
    assert.equal(retryDelayMs(DEFAULT_RETRY, 3, undefined, () => 0), 640);
    assert.equal(retryDelayMs(DEFAULT_RETRY, 30, undefined, () => 0.5), DEFAULT_RETRY.maxBackoffMs);
  });
});

describe("addresses and options", () => {
  test("targets, loopback and the rotation", () => {
    assert.deepEqual(parseTargets(" a:1, b:2 ,a:1"), ["a:1", "b:2"]);
    assert.deepEqual(parseTargets("dns:///svc:50051"), ["dns:///svc:50051"]);
    assert.throws(() => parseTargets(" , "), /no server address/);
    for (const local of ["127.0.0.1:50051", "localhost:1", "[::1]:50051", "unix:/tmp/s", "ipv4:127.0.0.1:1,127.0.0.2:2"]) {
      assert.ok(isLocal(local), local);
    }
    for (const remote of ["10.0.0.1:50051", "svc:50051", "dns:///svc:1", "127.0.0.1.example.com:1"]) assert.ok(!isLocal(remote), remote);
    const r = new AddressRotation(["a", "b", "c"]);
    assert.deepEqual([r.next(), r.next("b"), r.next()], ["a", "c", "a"]);
  });

  test("a token is not sent in the clear to a remote address unless allowed", () => {
    assert.throws(() => new TranslateClient("10.0.0.1:50051", { token: "t" }), /in the clear to 10\.0\.0\.1:50051/);
    new TranslateClient("10.0.0.1:50051", { token: "t", allowPlaintextToken: true }).close();
    new TranslateClient("127.0.0.1:50051", { token: "t" }).close();
  });

  test("streams and requests check their options before any call", async () => {
    const c = new TranslateClient("127.0.0.1:1");
    try {
      await assert.rejects(c.stream({ targets: [] }), /at least one target language/);
      await assert.rejects(c.stream({ targets: "spa", encoding: "opus", sampleRate: 16000 }), /48 kHz/);
      await assert.rejects(c.stream({ targets: "spa", channels: 3 }), /channels must be 1 or 2/);
      await assert.rejects(c.translate({ data: new Uint8Array(3), sampleRate: 16000, encoding: "linear16" }, { targets: "spa" }), /whole number/);
    } finally {
      c.close();
    }
  });
});
