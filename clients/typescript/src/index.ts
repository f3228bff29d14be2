/** translate-svc-client: the TypeScript client of translate_svc (docs/client.md, "TypeScript client"). */
export { TranslateClient, REQUEST_ID, CLIP_CHUNK_BYTES } from "./client";
export { TranslateStream } from "./stream";
export { RoomListener } from "./listen";
export { TranslateError, StreamEndedError, StreamResumeError, StreamClosedError, ListenEndedError, codeName } from "./errors";
export { type RetryPolicy, DEFAULT_RETRY } from "./retry";
export type * from "./types";
/** The generated messages and enums (ts-proto): results, options, `pb.SpeechEncoding.SPEECH_ENCODING_OPUS`... */
export * as pb from "./gen/translate_svc/api/v1/translate";
