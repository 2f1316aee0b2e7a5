// amanuensis web page: the main module. Uploads a file (XMLHttpRequest: upload progress, and
// the server-sent events read as they arrive) to /transcribe with stream=true and word
// timestamps, shows each segment as its event arrives, plays the file in a player synced with
// the words, and offers the transcript as txt, srt, vtt and json. The microphone is live.js.
"use strict";

import { Player } from "/player.js";
import { Microphone } from "/live.js";

const $ = (id) => document.getElementById(id);
// What happened, with times: read by the browser test, handy when debugging.
const log = (window.__amanuensis = { events: [], done: null, error: null, upload: [], live: null });

function setStatus(state, text) {
  const s = $("status");
  s.dataset.state = state;
  s.textContent = text;
}

/// Shows the progress bar at `fraction` (0..1), or hides it with null.
function setProgress(fraction) {
  const p = $("progress");
  p.hidden = fraction === null;
  if (fraction !== null) p.value = Math.max(0, Math.min(1, fraction));
}

export function stamp(seconds, sep) {
  const ms = Math.round(Math.max(0, seconds) * 1000);
  const pad = (n, w) => String(n).padStart(w, "0");
  const h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
  const s = Math.floor((ms % 60000) / 1000);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}${sep}${pad(ms % 1000, 3)}`;
}

/// A short clock for the page: 0:07, 12:34, 1:02:03.
function clock(seconds) {
  const s = Math.floor(Math.max(0, seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// The same layouts as the server's txt, srt and vtt writers.
function toTxt(doc) { return doc.text + "\n"; }
function toSrt(doc) {
  return doc.segments.map((s, i) =>
    `${i + 1}\n${stamp(s.start, ",")} --> ${stamp(s.end, ",")}\n${s.text.trim()}\n\n`).join("");
}
function toVtt(doc) {
  return "WEBVTT\n\n" + doc.segments.map((s) =>
    `${stamp(s.start, ".")} --> ${stamp(s.end, ".")}\n${s.text.trim()}\n\n`).join("");
}

/// `doc` = {text, segments: [{start, end, text}]}; `json` = what the server sent.
function offerDownloads(doc, json, basename) {
  const files = [
    ["dl-txt", toTxt(doc), "text/plain", "txt"],
    ["dl-srt", toSrt(doc), "application/x-subrip", "srt"],
    ["dl-vtt", toVtt(doc), "text/vtt", "vtt"],
    ["dl-json", JSON.stringify(json, null, 2) + "\n", "application/json", "json"],
  ];
  for (const [id, body, type, ext] of files) {
    const a = $(id);
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(new Blob([body], { type }));
    a.download = `${basename}.${ext}`;
  }
  $("downloads").hidden = false;
  $("transcript").textContent = doc.text;
}

const player = new Player($("player"), [$("segments"), $("live")]);

function reset() {
  $("segments").replaceChildren();
  $("live").replaceChildren();
  $("live").hidden = true;
  $("transcript").textContent = "";
  $("stats").textContent = "";
  $("downloads").hidden = true;
  setProgress(null);
  player.clear();
  log.events = [];
  log.done = null;
  log.error = null;
}

/// One segment: a clickable time, then its words (each clickable and highlighted while it
/// plays) or its text.
function addSegment(seg) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "time";
  t.tabIndex = 0;
  t.textContent = clock(seg.start);
  t.title = `${stamp(seg.start, ".")} → ${stamp(seg.end, ".")}`;
  const text = document.createElement("span");
  text.className = "text";
  li.append(t, text);
  t.dataset.t = String(seg.start);
  if (seg.words && seg.words.length) {
    seg.words.forEach((w, i) => {
      const span = document.createElement("span");
      span.className = "w" + (w.probability !== undefined && w.probability < 0.5 ? " unsure" : "");
      // The space before a word stays outside its highlight.
      const space = i === 0 ? "" : w.word.match(/^\s*/)[0];
      span.textContent = w.word.trimStart();
      if (w.probability !== undefined) span.title = `${stamp(w.start, ".")} · p ${w.probability.toFixed(2)}`;
      text.append(space, span);
      player.mark(w.start, w.end, span, li);
    });
  } else {
    text.textContent = seg.text.trim();
    player.mark(seg.start, seg.end, text, li);
  }
  $("segments").append(li);
  $("transcript").textContent = ($("transcript").textContent + seg.text).trimStart();
}

let job = null; // the upload in flight: {xhr, name, duration}

function handleEvent(ev) {
  log.events.push({ type: ev.type, at: performance.now() });
  if (ev.type === "transcript.text.delta") {
    addSegment(ev.segment);
    const d = job && job.duration;
    if (d) setProgress(ev.segment.end / d);
    setStatus("working", `Transcribing… ${stamp(ev.segment.end, ".")} done` + (d ? ` of ${stamp(d, ".")}` : ""));
  } else if (ev.type === "transcript.text.done") {
    log.done = ev;
    $("stats").textContent = `${ev.duration.toFixed(2)} s of audio in ${ev.processing_time.toFixed(2)} s ` +
      `(real-time factor ${ev.realtime_factor.toFixed(3)}), language ${ev.language}, job ${ev.job_id}`;
    const base = (job ? job.name : "transcript").replace(/\.[^.]*$/, "") || "transcript";
    offerDownloads(ev, ev, base);
    setProgress(null);
    setStatus("done", "Done. Click a word or a time to play from there.");
  } else if (ev.type === "error") {
    fail(ev.error);
  }
}

function fail(error) {
  log.error = error;
  setProgress(null);
  setStatus("error", "Error: " + error.message);
}

/// Reads the complete `data:` events in `text` from `from` on; returns where the unread rest begins.
function readEvents(text, from) {
  for (;;) {
    const end = text.indexOf("\n\n", from);
    if (end < 0) return from;
    const block = text.slice(from, end);
    from = end + 2;
    const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
    if (data) handleEvent(JSON.parse(data));
  }
}

let lastFile = null;

/// Uploads `blob`, plays it in the player and shows the transcript as it arrives.
export function transcribe(blob, filename) {
  if (job) job.xhr.abort();
  reset();
  lastFile = { blob, filename };
  $("go").disabled = false;
  player.load(blob);
  const task = $("task").value;
  const fd = new FormData();
  fd.append("file", blob, filename);
  fd.append("stream", "true");
  fd.append("task", task);
  if ($("words").checked) fd.append("word_timestamps", "true");
  const lang = $("language").value.trim();
  if (lang && task === "transcribe") fd.append("language", lang);
  if ($("beam").value) fd.append("beam_size", $("beam").value);
  const xhr = new XMLHttpRequest();
  const me = (job = { xhr, name: filename, duration: 0 });
  $("player").addEventListener("loadedmetadata", () => { me.duration = $("player").duration || 0; }, { once: true });
  xhr.open("POST", "/transcribe");
  setStatus("working", `Uploading ${filename}…`);
  setProgress(0);
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    log.upload.push({ loaded: e.loaded, total: e.total, at: performance.now() });
    setProgress(e.loaded / e.total);
    setStatus("working", `Uploading ${filename}… ${Math.round((100 * e.loaded) / e.total)} %`);
  };
  xhr.upload.onload = () => {
    setProgress(0);
    setStatus("working", "Uploaded; decoding the audio…");
  };
  let read = 0;
  xhr.onprogress = () => {
    if (xhr.status === 200) read = readEvents(xhr.responseText.replace(/\r\n/g, "\n"), read);
  };
  xhr.onload = () => {
    if (job !== me) return;
    job = null;
    if (xhr.status !== 200) {
      let msg = `${xhr.status} ${xhr.statusText}`;
      try { msg = JSON.parse(xhr.responseText).error.message; } catch (_) { /* not JSON */ }
      return fail({ message: msg, status: xhr.status });
    }
    readEvents(xhr.responseText.replace(/\r\n/g, "\n") + "\n\n", read);
    if (!log.done && !log.error) fail({ message: "the connection closed before the transcript was complete" });
  };
  xhr.onerror = () => { if (job === me) { job = null; fail({ message: "the upload failed (network error or server gone)" }); } };
  xhr.send(fd);
}

// ---- file choice, drag and drop ---------------------------------------------------------

function takeFile(f) {
  if (mic.active) mic.stop();
  if (f) transcribe(f, f.name || "audio");
}

$("file").addEventListener("change", () => {
  const f = $("file").files[0];
  $("file").value = "";
  takeFile(f);
});
$("go").addEventListener("click", () => { if (lastFile) transcribe(lastFile.blob, lastFile.filename); });
$("go").disabled = true;

let dragDepth = 0;
const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
document.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth++;
  $("drop").hidden = false;
});
document.addEventListener("dragleave", () => {
  if (--dragDepth <= 0) { dragDepth = 0; $("drop").hidden = true; }
});
document.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  const f = e.dataTransfer && e.dataTransfer.files[0];
  if (f) takeFile(f);
  else setStatus("error", "Error: drop an audio file (the drop held no file)");
});

$("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("transcript").textContent);
    $("copy").textContent = "Copied ✓";
  } catch (_) {
    $("copy").textContent = "Copy failed";
  }
  setTimeout(() => { $("copy").textContent = "Copy text"; }, 1500);
});

// ---- the microphone ----------------------------------------------------------------------

const mic = new Microphone({
  $, log, player, setStatus, setProgress, offerDownloads, stamp,
  reset: () => { if (job) { job.xhr.abort(); job = null; } reset(); },
  transcribe: (wav) => transcribe(wav, "recording.wav"),
});
$("record").addEventListener("click", () => (mic.active ? mic.stop() : mic.start($("mic-mode").value)));
const micLabel = () => { if (!mic.active) $("record").textContent = $("mic-mode").value === "live" ? "● Live microphone" : "● Record"; };
$("mic-mode").addEventListener("change", micLabel);

fetch("/health").then((r) => r.json()).then((h) => {
  $("server-status").textContent = `model ${h.model} (${h.compute_type}) — ${h.status}`;
}).catch(() => { $("server-status").textContent = "server unreachable"; });
