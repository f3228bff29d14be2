// translate_svc's listen page (/listen/<room>, docs/rooms.md): a room's output in one language over
// a WebSocket (/v1/rooms/<room>/listen): the captions as they settle and live, and the speech
// (PCM16 frames) played through an AudioContext. Plain JavaScript, no build step.
// window.listen exposes the page's state for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const SUBPROTOCOL = "translate-svc.rooms.v1";
const KEY_PREFIX = "openai-insecure-api-key.";

const listen = {
  room: decodeURIComponent(location.pathname.split("/")[2] || ""),
  ws: null,
  ctx: null,
  analyser: null,
  nextTime: 0,
  pending: null, // a room.segment whose speech frame comes next
  events: 0,
  segments: [], // {speaker, segment_id, text, backlog}
  backlog: 0,
  dropped: 0,
  samplesReceived: 0,
  samplesPlayed: 0, // scheduled into the AudioContext
  peak: 0, // the loudest sample the analyser saw while speech played
  closed: null, // {code, reason} when the socket closed
  // how loud the output is now (0..1), read from the analyser
  level() {
    if (!listen.analyser) return 0;
    const data = new Float32Array(listen.analyser.fftSize);
    listen.analyser.getFloatTimeDomainData(data);
    let max = 0;
    for (const x of data) max = Math.max(max, Math.abs(x));
    listen.peak = Math.max(listen.peak, max);
    return max;
  },
};
window.listen = listen;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

async function loadConfig() {
  $("room").textContent = listen.room;
  document.title = `${listen.room}: listen`;
  let response;
  for (;;) {
    response = await fetch("/listen/_/config");
    if (response.status !== 503) break;
    status("The server is still starting…");
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  const config = await response.json();
  $("noise").hidden = !config.test_model;
  const select = $("language");
  const wanted = new URLSearchParams(location.search).get("language") || localStorage.getItem("listen.language") || "eng";
  for (const lang of config.languages) {
    select.add(new Option(`${lang.name}${lang.speech ? "" : " (text only)"}`, lang.code, false, lang.code === wanted));
  }
  $("join").disabled = false;
  status("Pick your language and press Listen.");
}

// The key for this room: #key=<token or client secret> in the link, or (#demo) a client secret
// of this server's demo page; none on a server that takes no tokens.
async function key() {
  const params = hashParams();
  if (params.get("key")) return params.get("key");
  if (params.has("demo")) {
    const minted = await fetch("/demo/client_secret", { method: "POST" });
    if (!minted.ok) throw new Error(`the demo page gave no client secret (${minted.status})`);
    return (await minted.json()).value;
  }
  return null;
}

async function join() {
  $("join").disabled = true;
  $("language").disabled = true;
  $("speed").disabled = true;
  const language = $("language").value;
  const speed = $("speed").value; // "": each speaker's own rate
  localStorage.setItem("listen.language", language);
  if ($("speech").checked) startAudio();
  listen.segments = [];
  $("captions").replaceChildren();
  try {
    const k = await key();
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = new URLSearchParams(speed ? { language, speed } : { language });
    const url = `${scheme}//${location.host}/v1/rooms/${encodeURIComponent(listen.room)}/listen?${query}`;
    const ws = new WebSocket(url, k ? [SUBPROTOCOL, KEY_PREFIX + k] : [SUBPROTOCOL]);
    ws.binaryType = "arraybuffer";
    listen.ws = ws;
    listen.closed = null;
    ws.onmessage = (m) => (typeof m.data === "string" ? onEvent(JSON.parse(m.data)) : onSpeech(m.data));
    ws.onclose = (ev) => {
      listen.closed = { code: ev.code, reason: ev.reason };
      if (listen.ws === ws) {
        listen.ws = null;
        // a refused handshake shows as 1006 with no reason (browsers hide the HTTP answer)
        if (ev.code === 1006 && !listen.events && speed) {
          // a rate is the room owner's to allow (its key says so): the likeliest refusal then
          status("The server refused: this room may not take a speaking rate from this link; pick \"as each speaker speaks\" and press Listen (or check the link and the room's name).", true);
        } else if (ev.code === 1006 && !listen.events) status("The server refused: check the link (its key) and the room's name.", true);
        else if (ev.code === 1012) status("The server restarted: press Listen to go on.", true);
        else if (ev.code !== 1000) status(`Disconnected (${ev.code}${ev.reason ? `: ${ev.reason}` : ""}).`, true);
        reset();
      }
    };
    $("leave").disabled = false;
    status("Connecting…");
  } catch (e) {
    status(`Could not listen: ${e.message}`, true);
    reset();
  }
}

function leave() {
  const ws = listen.ws;
  listen.ws = null;
  ws?.close(1000);
  status("Stopped. Press Listen to go on.");
  reset();
}

function reset() {
  $("join").disabled = false;
  $("leave").disabled = true;
  $("language").disabled = false;
  $("speed").disabled = false;
}

function startAudio() {
  if (!listen.ctx) {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    listen.ctx = new Ctx();
    listen.analyser = listen.ctx.createAnalyser();
    listen.analyser.fftSize = 1024;
    listen.analyser.connect(listen.ctx.destination);
  }
  listen.ctx.resume(); // inside the click: phones start audio only on a gesture
}

function onEvent(ev) {
  listen.events += 1;
  switch (ev.type) {
    case "room.started":
      listen.backlog = ev.backlog;
      status(ev.speakers.length ? "Listening." : "Listening: nobody speaks yet.");
      break;
    case "room.segment":
      addSegment(ev);
      listen.pending = ev.audio ? ev : null;
      break;
    case "room.caption":
      showCaption(ev);
      break;
    case "room.dropped":
      listen.dropped = ev.total;
      addNote(`Missed ${ev.count} ${ev.count === 1 ? "part" : "parts"} (this connection is slow).`);
      break;
    case "room.draining":
      status("The server is restarting soon; this page will reconnect when you press Listen.");
      break;
    case "room.closed":
      status(ev.message, true);
      break;
    default:
      break;
  }
}

function addSegment(ev) {
  listen.segments.push({ speaker: ev.speaker, segment_id: ev.segment_id, text: ev.text, backlog: ev.backlog });
  const li = document.createElement("li");
  li.className = ev.backlog ? "backlog" : "live";
  li.dataset.segment = ev.segment_id;
  li.dataset.speaker = ev.speaker;
  const who = Object.assign(document.createElement("span"), { className: "who", textContent: ev.speaker });
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = ev.error ? `(not translated: ${ev.error.message})` : ev.text;
  li.append(who, text);
  const list = $("captions");
  const atEnd = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
  list.append(li);
  if (atEnd) li.scrollIntoView({ block: "end" });
  if (!ev.backlog) {
    $("caption").textContent = ev.text || "…";
    $("caption").classList.add("muted");
  }
}

function addNote(text) {
  const li = Object.assign(document.createElement("li"), { className: "dropped", textContent: text });
  $("captions").append(li);
}

function showCaption(ev) {
  const el = $("caption");
  const settled = ev.stable_text || "";
  const rest = ev.text.slice(settled.length);
  el.replaceChildren(Object.assign(document.createElement("span"), { className: "settled", textContent: settled }), rest);
  el.classList.remove("muted");
}

// A segment's speech: PCM16 little-endian mono at the rate its room.segment named.
function onSpeech(buffer) {
  const seg = listen.pending;
  listen.pending = null;
  if (!seg) return;
  const pcm = new Int16Array(buffer);
  listen.samplesReceived += pcm.length;
  if (!listen.ctx || !$("speech").checked) return;
  const audio = listen.ctx.createBuffer(1, pcm.length, seg.audio.sample_rate);
  const out = audio.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  const source = listen.ctx.createBufferSource();
  source.buffer = audio;
  source.connect(listen.analyser);
  const at = Math.max(listen.ctx.currentTime + 0.05, listen.nextTime);
  source.start(at);
  listen.nextTime = at + audio.duration;
  listen.samplesPlayed += pcm.length;
}

document.addEventListener("DOMContentLoaded", () => {
  $("join").addEventListener("click", join);
  $("leave").addEventListener("click", leave);
  $("speech").addEventListener("change", () => $("speech").checked && startAudio());
  setInterval(listen.level, 100);
  loadConfig().catch((e) => status(`Cannot load the page: ${e.message}`, true));
});
