// amanuensis web page: sends a file (or a microphone recording, converted to 16 kHz WAV) to
// the OpenAI-style endpoint with stream=true, shows each segment as its event arrives, and
// offers the finished transcript as txt, srt and vtt.
"use strict";

const $ = (id) => document.getElementById(id);
// What happened, with times: read by the browser test, handy when debugging.
const log = (window.__amanuensis = { events: [], done: null, error: null });

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

function stamp(seconds, sep) {
  const ms = Math.round(Math.max(0, seconds) * 1000);
  const pad = (n, w) => String(n).padStart(w, "0");
  const h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${sep}${pad(ms % 1000, 3)}`;
}

// The same layouts as the server's txt, srt and vtt writers.
function toTxt(done) { return done.text + "\n"; }
function toSrt(done) {
  return done.segments.map((s, i) =>
    `${i + 1}\n${stamp(s.start, ",")} --> ${stamp(s.end, ",")}\n${s.text.trim()}\n\n`).join("");
}
function toVtt(done) {
  return "WEBVTT\n\n" + done.segments.map((s) =>
    `${stamp(s.start, ".")} --> ${stamp(s.end, ".")}\n${s.text.trim()}\n\n`).join("");
}

function offerDownloads(done) {
  for (const [id, body, type] of [["dl-txt", toTxt(done), "text/plain"], ["dl-srt", toSrt(done), "application/x-subrip"], ["dl-vtt", toVtt(done), "text/vtt"]]) {
    const a = $(id);
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([body], { type }));
  }
  $("downloads").hidden = false;
}

function reset() {
  $("segments").replaceChildren();
  $("transcript").textContent = "";
  $("stats").textContent = "";
  $("downloads").hidden = true;
  log.events = [];
  log.done = null;
  log.error = null;
}

function addSegment(seg) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "time";
  t.textContent = `[${stamp(seg.start, ".")} → ${stamp(seg.end, ".")}]`;
  li.append(t, document.createTextNode(seg.text.trim()));
  $("segments").append(li);
  $("transcript").textContent = ($("transcript").textContent + seg.text).trimStart();
}

function handleEvent(ev) {
  log.events.push({ type: ev.type, at: performance.now() });
  if (ev.type === "transcript.text.delta") {
    addSegment(ev.segment);
    setStatus("working", `Transcribing… ${stamp(ev.segment.end, ".")} done`);
  } else if (ev.type === "transcript.text.done") {
    log.done = ev;
    $("transcript").textContent = ev.text;
    $("stats").textContent = `${ev.duration.toFixed(2)} s of audio in ${ev.processing_time.toFixed(2)} s ` +
      `(real-time factor ${ev.realtime_factor.toFixed(3)}), language ${ev.language}, job ${ev.job_id}`;
    offerDownloads(ev);
    setStatus("done", "Done.");
  } else if (ev.type === "error") {
    log.error = ev.error;
    setStatus("error", "Error: " + ev.error.message);
  }
}

async function transcribe(blob, filename) {
  reset();
  const task = $("task").value;
  const fd = new FormData();
  fd.append("file", blob, filename);
  fd.append("stream", "true");
  const lang = $("language").value.trim();
  if (lang && task === "transcribe") fd.append("language", lang);
  if ($("beam").value) fd.append("beam_size", $("beam").value);
  const url = task === "translate" ? "/v1/audio/translations" : "/v1/audio/transcriptions";
  setStatus("working", `Uploading ${filename}…`);
  $("go").disabled = true;
  try {
    const resp = await fetch(url, { method: "POST", body: fd });
    if (!resp.ok) {
      let msg = `${resp.status} ${resp.statusText}`;
      try { msg = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
      log.error = { message: msg, status: resp.status };
      setStatus("error", "Error: " + msg);
      return;
    }
    setStatus("working", "Transcribing…");
    // Server-sent events over a POST: read the body stream and split it into events.
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data) handleEvent(JSON.parse(data));
      }
    }
    if (!log.done && !log.error) setStatus("error", "Error: the connection closed before the transcript was complete");
  } catch (e) {
    log.error = { message: String(e) };
    setStatus("error", "Error: " + e);
  } finally {
    $("go").disabled = false;
  }
}

// ---- microphone: MediaRecorder, then decode and resample to 16 kHz mono WAV -------------
// Browsers record Opus in WebM, which the server does not read; the page converts it.

function wavBytes(samples, rate) {
  const buf = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buf);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); v.setUint32(16, 16, true); v.setUint16(20, 1, true); v.setUint16(22, 1, true);
  v.setUint32(24, rate, true); v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
  text(36, "data"); v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, x < 0 ? x * 32768 : x * 32767, true);
  }
  return new Blob([buf], { type: "audio/wav" });
}

async function toWav16k(blob) {
  const ctx = new AudioContext();
  let decoded;
  try { decoded = await ctx.decodeAudioData(await blob.arrayBuffer()); } finally { ctx.close(); }
  const frames = Math.max(1, Math.ceil(decoded.duration * 16000));
  const off = new OfflineAudioContext(1, frames, 16000);
  const src = off.createBufferSource();
  src.buffer = decoded;
  src.connect(off.destination);
  src.start();
  const rendered = await off.startRendering();
  return wavBytes(rendered.getChannelData(0), 16000);
}

let recorder = null;
let recTimer = null;

async function toggleRecording() {
  const btn = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    setStatus("error", "Error: no microphone (" + e.message + ")");
    return;
  }
  reset();
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    clearInterval(recTimer);
    recorder = null;
    btn.textContent = "● Record";
    btn.classList.remove("recording");
    $("rec-time").textContent = "";
    try {
      const wav = await toWav16k(new Blob(chunks, { type: chunks[0] ? chunks[0].type : "audio/webm" }));
      await transcribe(wav, "recording.wav");
    } catch (e) {
      log.error = { message: String(e) };
      setStatus("error", "Error: could not convert the recording (" + e + ")");
    }
  };
  recorder.start(250);
  const t0 = Date.now();
  recTimer = setInterval(() => { $("rec-time").textContent = ((Date.now() - t0) / 1000).toFixed(1) + " s"; }, 200);
  btn.textContent = "■ Stop";
  btn.classList.add("recording");
  setStatus("working", "Recording… press Stop to transcribe.");
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  const f = $("file").files[0];
  if (!f) { setStatus("error", "Error: choose an audio file first"); return; }
  transcribe(f, f.name);
});
$("record").addEventListener("click", toggleRecording);

fetch("/health").then((r) => r.json()).then((h) => {
  $("server-status").textContent = `model ${h.model} (${h.compute_type}) — ${h.status}`;
}).catch(() => { $("server-status").textContent = "server unreachable"; });
