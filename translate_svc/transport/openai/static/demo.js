// translate_svc's browser demo: the microphone over WebRTC to this server, OpenAI's realtime
// translation events on the "oai-events" data channel, one translated audio track per target.
// Plain JavaScript, no build step. window.demo exposes the call's state for tests.
"use strict";

const $ = (id) => document.getElementById(id);
const CALLS = "/v1/realtime/translations/calls";

const demo = {
  config: null,
  pc: null,
  channel: null,
  mic: null,
  targets: [],
  segments: new Map(), // segment_id -> {row, cells}
  events: 0,
  speed: null, // the speaking rate the server's last session.updated reports
  closed: null, // resolves on session.closed
  // inbound audio per target (WebRTC stats), for the page and for tests
  async stats() {
    const out = { inbound: [], outbound_bytes: 0 };
    if (!demo.pc) return out;
    const report = await demo.pc.getStats();
    const mids = new Map(demo.pc.getTransceivers().map((t, i) => [t.mid, i]));
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        const index = mids.has(s.mid) ? mids.get(s.mid) : -1;
        out.inbound.push({
          language: demo.targets[index] ?? null,
          bytes: s.bytesReceived ?? 0,
          packets: s.packetsReceived ?? 0,
          energy: s.totalAudioEnergy ?? 0,
        });
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.outbound_bytes += s.bytesSent ?? 0;
      }
    });
    return out;
  },
};
window.demo = demo;

function status(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function languageName(code) {
  const lang = demo.config?.languages.find((l) => l.code === code);
  return lang ? lang.name : code;
}

async function loadConfig() {
  let response;
  for (;;) {
    response = await fetch("/demo/config");
    if (response.status !== 503) break;
    status("The model is still loading…");
    await new Promise((r) => setTimeout(r, 2000));
  }
  if (!response.ok) throw new Error(`/demo/config answered ${response.status}`);
  const config = await response.json();
  demo.config = config;
  $("model").textContent = `Model: ${config.model}`;
  $("noise").hidden = !config.test_model;
  const source = $("source");
  const targets = $("targets");
  for (const lang of config.languages) {
    source.add(new Option(`${lang.name} (${lang.code})`, lang.code, false, lang.code === "eng"));
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = lang.code;
    box.checked = lang.code === "spa";
    label.append(box, ` ${lang.name}${lang.speech ? "" : " (text only)"}`);
    targets.append(label);
  }
  if (!targets.querySelector("input:checked")) {
    const first = targets.querySelector("input:not([value=eng])");
    if (first) first.checked = true;
  }
  if (!window.isSecureContext || !navigator.mediaDevices) {
    status(
      "Browsers give the microphone only to secure pages: open this page at http://127.0.0.1 or " +
        "http://localhost (e.g. through kubectl port-forward), or serve it with TLS.",
      true,
    );
    return;
  }
  $("start").disabled = false;
  status("Pick the languages and press Start.");
}

function chosenTargets() {
  return [...$("targets").querySelectorAll("input:checked")].map((b) => b.value);
}

async function start() {
  const targets = chosenTargets();
  const max = demo.config.max_targets;
  if (targets.length === 0 || targets.length > max) {
    status(`Pick between 1 and ${max} target languages.`, true);
    return;
  }
  const room = $("room").value.trim();
  if (room && !$("room").checkValidity()) {
    status("A room's name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.", true);
    return;
  }
  $("start").disabled = true;
  demo.targets = targets;
  showShare(room);
  setColumns(targets);
  try {
    status("Asking this server for a short-lived client secret…");
    const minted = await fetch("/demo/client_secret", { method: "POST" });
    if (!minted.ok) throw new Error(`the server refused a client secret (${minted.status})`);
    const secret = (await minted.json()).value;

    status("Opening the microphone…");
    demo.mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
    });
    const pc = new RTCPeerConnection();
    demo.pc = pc;
    // The first target's speech comes back on the microphone's transceiver, each further one on
    // a receive-only transceiver of its own, in the order of ?languages=.
    pc.addTransceiver(demo.mic.getAudioTracks()[0], { direction: "sendrecv" });
    for (let i = 1; i < targets.length; i++) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (ev) => addPlayer(targets[pc.getTransceivers().indexOf(ev.transceiver)], ev.track);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") status("The connection to the server failed.", true);
    };

    const channel = pc.createDataChannel("oai-events");
    demo.channel = channel;
    demo.closed = new Promise((resolve) => {
      channel.onmessage = (m) => {
        const ev = JSON.parse(m.data);
        onEvent(ev);
        if (ev.type === "session.closed") resolve(ev);
      };
      channel.onclose = () => resolve(null);
    });
    channel.onopen = () => {
      const interval = Math.max(1000, demo.config.min_captions_interval_ms);
      channel.send(
        JSON.stringify({
          type: "session.update",
          session: {
            audio: {
              input: { transcription: { model: demo.config.model }, language: $("source").value },
              output: { language: targets[0], languages: targets, speed: Number($("speed").value) },
            },
            x_captions_interval_ms: interval,
            ...(room ? { x_room: { name: room } } : {}),
          },
        }),
      );
    };

    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc);
    const query = new URLSearchParams({ languages: targets.join(","), model: demo.config.model });
    const answer = await fetch(`${CALLS}?${query}`, {
      method: "POST",
      body: pc.localDescription.sdp,
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${secret}` },
    });
    if (!answer.ok) {
      const body = await answer.json().catch(() => ({}));
      throw new Error(body.error?.message ?? `the server answered ${answer.status}`);
    }
    await pc.setRemoteDescription({ type: "answer", sdp: await answer.text() });
    status("Connecting…");
    $("stop").disabled = false;
  } catch (e) {
    status(`Could not start: ${e.message}`, true);
    hangUp();
    $("start").disabled = false;
  }
}

// A room's listen page: its link and QR code (#demo: the listeners' page uses this page's secrets).
// The server draws a few new codes a second (rooms.qr_draws_per_s) and answers 503 beyond: try again.
function showShare(room) {
  $("share").hidden = !room;
  if (!room) return;
  const path = `/listen/${encodeURIComponent(room)}`;
  const qr = $("qr");
  let tries = 0;
  qr.onerror = () => {
    tries += 1;
    if (tries <= 5) setTimeout(() => { qr.src = `${path}/qr.svg?demo=1&try=${tries}`; }, 2000 * tries);
  };
  qr.src = `${path}/qr.svg?demo=1`;
  $("listen-link").href = `${path}#demo`;
  $("listen-link").textContent = `${location.origin}${path}`;
}

// The server takes the offer whole (no trickle ICE): wait until the browser has its candidates.
function iceGathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);
  });
}

async function stop() {
  $("stop").disabled = true;
  if (demo.channel?.readyState === "open") {
    status("Translating the last words…");
    demo.channel.send(JSON.stringify({ type: "session.close" }));
    await Promise.race([demo.closed, new Promise((r) => setTimeout(r, 15000))]);
  }
  hangUp();
  status("Stopped. Press Start to talk again.");
  $("start").disabled = false;
}

function hangUp() {
  demo.mic?.getTracks().forEach((t) => t.stop());
  demo.pc?.close();
  demo.channel = null;
}

function addPlayer(language, track) {
  const box = document.createElement("div");
  box.className = "player";
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.autoplay = true;
  audio.srcObject = new MediaStream([track]);
  const label = document.createElement("div");
  label.textContent = `${languageName(language)} speech`;
  const received = document.createElement("div");
  received.className = "muted received";
  received.dataset.language = language;
  box.append(label, audio, received);
  $("players").append(box);
  audio.play().catch(() => status("Press play on a player to hear the translation.", false));
}

function setColumns(targets) {
  const head = $("segments-head");
  head.querySelectorAll(".target").forEach((th) => th.remove());
  const latency = head.lastElementChild;
  for (const code of targets) {
    const th = document.createElement("th");
    th.className = "target";
    th.textContent = languageName(code);
    head.insertBefore(th, latency);
  }
  $("segments").tBodies[0].replaceChildren();
  demo.segments.clear();
}

// A segment's row; a commit (simultaneous mode) opens it before its span is known.
function segmentRow(span) {
  let seg = demo.segments.get(span.segment_id);
  if (!seg) {
    const row = $("segments").tBodies[0].insertRow();
    row.dataset.segment = span.segment_id;
    const cells = [span.segment_id, "…"].map((text) =>
      Object.assign(row.insertCell(), { textContent: text, className: "num" }),
    );
    cells.push(row.insertCell()); // heard
    for (const code of demo.targets) cells.push(Object.assign(row.insertCell(), { className: `tr-${code}` }));
    cells.push(Object.assign(row.insertCell(), { className: "num latency" }));
    seg = { row, cells, committed: new Map() };
    demo.segments.set(span.segment_id, seg);
  }
  if (span.start_ms !== undefined && span.end_ms !== undefined) {
    seg.cells[1].textContent = `${(span.start_ms / 1000).toFixed(1)}–${(span.end_ms / 1000).toFixed(1)}`;
  }
  return seg;
}

// Simultaneous mode: a commit's words, appended to what the segment's target said so far.
function onCommit(ev) {
  const seg = segmentRow(ev.x_segment);
  const index = demo.targets.indexOf(ev.x_language);
  if (index < 0) return;
  const text = (seg.committed.get(ev.x_language) ?? "") + ev.delta;
  seg.committed.set(ev.x_language, text);
  seg.cells[3 + index].textContent = text.trim();
  seg.row.classList.add("committing");
  const parts = demo.targets.map((t) => (seg.committed.get(t) ?? "").trim()).filter(Boolean);
  $("caption").textContent = parts.join("  ·  ");
  $("caption").classList.remove("muted");
}

function onEvent(ev) {
  demo.events += 1;
  switch (ev.type) {
    case "session.created":
      status("Connected; setting up the session…");
      break;
    case "session.updated":
      demo.speed = ev.session?.audio?.output?.speed ?? demo.speed;
      if (ev.x_session_id) status("Listening: speak now.");
      break;
    case "session.input_transcript.delta":
      if (ev.x_interim) {
        const c = ev.x_interim;
        const parts = [c.transcript, ...demo.targets.map((t) => c.translations[t])].filter(Boolean);
        $("caption").textContent = parts.join("  ·  ") || "…";
        $("caption").classList.remove("muted");
      } else {
        segmentRow(ev.x_segment).cells[2].textContent = ev.delta.trim();
      }
      break;
    case "session.output_transcript.delta": {
      if (ev.x_commit) {
        onCommit(ev);
        break;
      }
      const seg = segmentRow(ev.x_segment);
      const index = demo.targets.indexOf(ev.x_language);
      // the segment's result: its whole text (after commits, in x_done: the delta is empty)
      const text = ev.x_done ? ev.x_done.text : ev.delta;
      if (index >= 0) seg.cells[3 + index].textContent = text.trim();
      if (ev.x_timing) seg.cells[seg.cells.length - 1].textContent = `${Math.round(ev.x_timing.latency_ms)} ms`;
      seg.row.classList.remove("committing");
      $("caption").textContent = text.trim();
      $("caption").classList.add("muted");
      break;
    }
    case "error":
      status(`Server: ${ev.error.message}`, true);
      break;
    case "session.x_draining": // a notice: the session goes on until the drain's deadline
      status(`Server: ${ev.message}`);
      break;
    case "session.x_segment_failed": // a notice: the next segments are translated
      status(`Server: a segment failed: ${ev.error.message}`, true);
      break;
    case "session.closed":
      status("The session ended.");
      break;
    default:
      break;
  }
}

async function showReceived() {
  for (const s of (await demo.stats()).inbound) {
    const el = document.querySelector(`.received[data-language="${s.language}"]`);
    if (el) el.textContent = `${(s.bytes / 1000).toFixed(1)} kB received`;
  }
}

// The speaking rate: shown as it moves, sent when it is let go (a session.update of the output's
// speed alone, which the server applies from the next segment on).
function showSpeed() {
  $("speed-value").textContent = `${Number($("speed").value).toFixed(2)}×`;
}

function sendSpeed() {
  if (demo.channel?.readyState !== "open") return; // sent with the session's first update
  const speed = Number($("speed").value);
  demo.channel.send(JSON.stringify({ type: "session.update", session: { audio: { output: { speed } } } }));
}

document.addEventListener("DOMContentLoaded", () => {
  $("speed").addEventListener("input", showSpeed);
  $("speed").addEventListener("change", sendSpeed);
  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  setInterval(showReceived, 1000);
  loadConfig().catch((e) => status(`Cannot load the page's settings: ${e.message}`, true));
});
