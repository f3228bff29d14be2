// openai-node's own realtime client against a translate_svc server
// (tests/transport/openai/test_clients.py runs it on Node 22 from `make node`). Written from
// openai-node's published API: `new OpenAIRealtimeWebSocket({model, buildRealtimeURL}, client)`
// opens Node's global WebSocket with the subprotocols ["realtime",
// "openai-insecure-api-key.<apiKey>"]; `on("event")` gets every server event, `on("error")` the
// `error` events and transport failures.
//
// usage: node realtime_translation.cjs <wss url> <api key> <pcm16 24 kHz file> <language>
// Prints one JSON object: the selected subprotocol, whether the socket opened, a summary of every
// event, the errors and the close code.
"use strict";

const fs = require("node:fs");
const { OpenAI } = require("openai");
const { OpenAIRealtimeWebSocket } = require("openai/realtime/websocket");

const [url, apiKey, pcmPath, language] = process.argv.slice(2);
const CHUNK = 9600; // 200 ms of 24 kHz PCM16

const client = new OpenAI({ apiKey, baseURL: "https://api.invalid/v1" });
const rt = new OpenAIRealtimeWebSocket(
  { model: "gpt-realtime-translate", buildRealtimeURL: () => new URL(url) },
  client,
);
const out = { opened: false, protocol: null, events: [], errors: [], close: null };

function summary(ev) {
  const s = { type: ev.type };
  for (const k of ["transcript", "x_segment", "x_language", "x_reason", "x_segments_total", "code", "x_avg_logprob"]) {
    if (ev[k] !== undefined) s[k] = ev[k];
  }
  if (typeof ev.delta === "string") s.delta = ev.type === "session.output_audio.delta" ? ev.delta.length : ev.delta;
  if (ev.x_commit) s.x_commit = true;
  return s;
}

let finished = false;
function finish(code) {
  if (finished) return;
  finished = true;
  out.close = code;
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

rt.on("event", (ev) => out.events.push(summary(ev)));
rt.on("error", (err) => {
  out.errors.push(String(err.message).slice(0, 300));
  // a refused handshake: Node's WebSocket reports the error; its close may not follow
  if (!out.opened) setTimeout(() => finish(null), 500);
});
rt.on("session.closed", () => rt.close());
rt.socket.addEventListener("close", (ev) => finish(ev.code));
rt.socket.addEventListener("open", async () => {
  out.opened = true;
  out.protocol = rt.socket.protocol;
  rt.send({ type: "session.update", session: { audio: { output: { language } } } });
  const pcm = fs.readFileSync(pcmPath);
  for (let at = 0; at < pcm.length; at += CHUNK) {
    rt.send({ type: "session.input_audio_buffer.append", audio: pcm.subarray(at, at + CHUNK).toString("base64") });
    await new Promise((r) => setTimeout(r, 20)); // ten times real time
  }
  rt.send({ type: "session.close" });
});
setTimeout(() => {
  out.errors.push("timed out");
  finish(null);
}, 120_000);
