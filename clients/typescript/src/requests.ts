/** Options to request messages (pure). */
import {
  AudioEncoding,
  type Conversation,
  type LanguageDetection,
  OutputOptions,
  type SimultaneousConfig,
  Term,
  Term_Kind,
  VadOptions,
} from "./gen/translate_svc/api/v1/translate";
import type { ConversationInput, RawEncoding, RequestOptions, StreamEncoding, StreamOptions, TermInput } from "./types";

export const ENCODINGS: Record<StreamEncoding, AudioEncoding> = {
  linear16: AudioEncoding.LINEAR16,
  float32: AudioEncoding.FLOAT32,
  mulaw: AudioEncoding.MULAW,
  alaw: AudioEncoding.ALAW,
  opus: AudioEncoding.OPUS,
};
export const SAMPLE_BYTES: Record<RawEncoding, number> = { linear16: 2, float32: 4, mulaw: 1, alaw: 1 };
export const OPUS_RATE = 48000;

/** The target languages ("spa,fra" or a list); none only for ASR (a source or detection). */
export function targetsList(targets: string | readonly string[], asr: boolean): string[] {
  const out =
    typeof targets === "string"
      ? targets.split(",").map((t) => t.trim()).filter((t) => t.length > 0)
      : [...targets];
  if (out.length === 0 && !asr) {
    throw new RangeError(
      'name at least one target language, e.g. targets: ["spa"]; or, for the transcript alone (ASR only), ' +
        "targets: [] with source or detect",
    );
  }
  return out;
}

/** A conversation's message, or undefined where none is asked. Two languages at least: the server
 * checks the rest (codes it identifies, at most four, a stated one among them). */
export function conversationPb(c: RequestOptions["conversation"]): Conversation | undefined {
  if (c === undefined) return undefined;
  const o: ConversationInput = typeof c === "string" || Array.isArray(c) ? { languages: c as string | readonly string[] } : (c as ConversationInput);
  const languages =
    typeof o.languages === "string" ? o.languages.split(",").map((t) => t.trim()).filter((t) => t.length > 0) : [...o.languages];
  if (languages.length < 2) {
    throw new RangeError('a conversation names two languages or more, e.g. conversation: ["eng", "spa"]');
  }
  return { languages, statedLanguage: o.stated ?? "", voices: { ...o.voices }, speeds: { ...o.speeds } };
}

export function termsPb(terms: readonly TermInput[] = []): Term[] {
  return terms.map((t) => (typeof t === "string" ? Term.fromPartial({ phrase: t, kind: Term_Kind.BOOST }) : Term.fromPartial(t)));
}

export function detectionPb(detect: boolean | readonly string[] = false): LanguageDetection | undefined {
  if (detect === false) return undefined;
  return { enabled: true, candidates: detect === true ? [] : [...detect] };
}

export function simultaneousPb(s: StreamOptions["simultaneous"] = false): SimultaneousConfig | undefined {
  if (s === false) return undefined;
  const o = s === true ? {} : s;
  return { enabled: true, stepMs: o.stepMs ?? 0, agreement: o.agreement ?? 0 };
}

export function outputPb(o: Partial<OutputOptions> | undefined): OutputOptions | undefined {
  return o === undefined ? undefined : OutputOptions.fromPartial(o);
}

export function vadPb(v: Partial<VadOptions> | undefined): VadOptions | undefined {
  return v === undefined ? undefined : VadOptions.fromPartial(v);
}

/** Little-endian bytes of a typed array (the wire's byte order; Node runs little-endian hosts). */
export function bytesOf(a: Int16Array | Float32Array | Uint8Array): Uint8Array {
  return a instanceof Uint8Array ? a : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A stream's encoding, rate and channels, checked as the Python SDK checks them. */
export function streamFormat(o: StreamOptions): { encoding: StreamEncoding; rate: number; channels: number } {
  const encoding = o.encoding ?? "linear16";
  if (!(encoding in ENCODINGS)) throw new RangeError(`stream encoding ${JSON.stringify(encoding)}: use linear16, float32, mulaw, alaw or opus`);
  let rate = o.sampleRate ?? 16000;
  if (encoding === "opus") {
    if (o.sampleRate !== undefined && o.sampleRate !== 0 && o.sampleRate !== OPUS_RATE) {
      throw new RangeError("Opus streams run on a 48 kHz timeline: leave sampleRate at 48000");
    }
    rate = OPUS_RATE;
  }
  const channels = o.channels ?? 1;
  if (channels !== 1 && channels !== 2) throw new RangeError("channels must be 1 or 2");
  return { encoding, rate, channels };
}
