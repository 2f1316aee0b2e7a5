// amanuensis web page: the microphone. An AudioWorklet (pcm-worklet.js) turns it into 16 kHz
// mono PCM16; in "live" mode the chunks go over a WebSocket to /v1/realtime?intent=transcription
// (OpenAI's Realtime transcription protocol) and the transcript appears while one speaks:
// one paragraph per utterance, the unconfirmed tail in grey. In "record" mode (or when the
// server has no live endpoint) the recording is uploaded as a WAV file when one stops. Either
// way the recording ends up in the player.
"use strict";

const RATE = 16000;

function base64(buf) {
  const u8 = new Uint8Array(buf);
  let s = "";
  for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
  return btoa(s);
}

/// A 16-bit mono WAV file of the PCM chunks (Int16Array buffers).
function wavBlob(chunks, rate) {
  const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
  const h = new DataView(new ArrayBuffer(44));
  const text = (o, s) => { for (let i = 0; i < s.length; i++) h.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); h.setUint32(4, 36 + bytes, true); text(8, "WAVE");
  text(12, "fmt "); h.setUint32(16, 16, true); h.setUint16(20, 1, true); h.setUint16(22, 1, true);
  h.setUint32(24, rate, true); h.setUint32(28, rate * 2, true); h.setUint16(32, 2, true); h.setUint16(34, 16, true);
  text(36, "data"); h.setUint32(40, bytes, true);
  return new Blob([h.buffer, ...chunks], { type: "audio/wav" });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Microphone {
  constructor(ui) {
    this.ui = ui;
    this.active = false;
  }

  async start(mode) {
    const { $, setStatus, log } = this.ui;
    if (this.active) return;
    this.ui.reset();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, noiseSuppression: false } });
    } catch (e) {
      log.error = { message: "no microphone: " + (e.message || e.name) };
      setStatus("error", "Error: no microphone (" + (e.message || e.name) + ")");
      return;
    }
    this.active = true;
    this.stopping = false;
    this.mode = mode;
    this.stream = stream;
    this.pcm = [];
    this.queue = [];
    this.items = new Map();
    this.lastEvent = 0;
    log.live = { events: [], opened: false, fallback: null, errors: [], sent: 0 };
    try {
      await this.startAudio(stream);
    } catch (e) {
      this.release();
      log.error = { message: "cannot read the microphone: " + e };
      setStatus("error", "Error: cannot read the microphone (" + e + ")");
      return;
    }
    const btn = $("record");
    btn.textContent = "■ Stop";
    btn.classList.add("recording");
    const t0 = Date.now();
    this.timer = setInterval(() => { $("rec-time").textContent = ((Date.now() - t0) / 1000).toFixed(1) + " s"; }, 200);
    if (mode === "live") {
      $("live").hidden = false;
      setStatus("working", "Connecting…");
      this.openSocket();
    } else {
      setStatus("working", "Recording… press Stop to transcribe.");
    }
  }

  /// The microphone into the worklet, at 16 kHz when the browser resamples for us.
  async startAudio(stream) {
    let ctx, src;
    try {
      ctx = new AudioContext({ sampleRate: RATE });
      src = ctx.createMediaStreamSource(stream);
    } catch (_) {
      // Some browsers refuse a microphone at another rate than the context's: resample ourselves.
      if (ctx) ctx.close();
      ctx = new AudioContext();
      src = ctx.createMediaStreamSource(stream);
    }
    this.ctx = ctx;
    await ctx.audioWorklet.addModule("/pcm-worklet.js");
    const node = new AudioWorkletNode(ctx, "pcm-writer");
    node.port.onmessage = (e) => this.onPcm(e.data);
    src.connect(node);
    node.connect(ctx.destination); // it writes silence; being connected keeps it running
    this.node = node;
    if (ctx.state === "suspended") await ctx.resume();
  }

  onPcm(data) {
    if (data === "flushed") {
      if (this.flushed) this.flushed();
      return;
    }
    this.pcm.push(data);
    const v = new Int16Array(data);
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
    const level = Math.min(1, Math.sqrt(sum / Math.max(1, v.length)) / 6000);
    this.ui.$("record").style.setProperty("--level", level.toFixed(2));
    if (this.mode !== "live") return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send(data);
    else this.queue.push(data);
  }

  send(data) {
    this.ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(data) }));
    this.ui.log.live.sent += data.byteLength / 2;
  }

  openSocket() {
    const { setStatus, log, $ } = this.ui;
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/realtime?intent=transcription`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      return this.fallback(String(e));
    }
    this.ws = ws;
    ws.onopen = () => {
      log.live.opened = true;
      const transcription = { model: "whisper-1" };
      const lang = $("language").value.trim();
      if (lang) transcription.language = lang;
      ws.send(JSON.stringify({
        type: "session.update",
        session: {
          type: "transcription",
          audio: { input: {
            format: { type: "audio/pcm", rate: RATE },
            transcription,
            turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
          } },
          include: ["item.input_audio_transcription.partial"],
        },
      }));
      for (const d of this.queue) this.send(d);
      this.queue = [];
      if (!this.stopping) setStatus("live", "Listening… speak, then press Stop.");
    };
    ws.onmessage = (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch (_) { return; }
      this.onEvent(ev);
    };
    ws.onclose = (e) => {
      this.ws = null;
      if (!log.live.opened) this.fallback("the server has no live endpoint");
      else if (this.active && !this.stopping) {
        this.fallback(`the live connection closed${e.reason ? " (" + e.reason + ")" : ""}`);
      }
      if (this.wake) this.wake();
    };
  }

  /// Live is impossible: go on recording and transcribe the recording at Stop.
  fallback(why) {
    if (!this.active || this.mode !== "live") return;
    this.ui.log.live.fallback = why;
    this.mode = "record";
    this.queue = [];
    this.ui.setStatus("working", `Live transcription is not available (${why}); recording — press Stop to transcribe the recording.`);
  }

  item(id) {
    let it = this.items.get(id);
    if (!it) {
      const p = document.createElement("p");
      p.className = "item";
      const c = document.createElement("span");
      c.className = "committed";
      const pe = document.createElement("span");
      pe.className = "partial";
      p.append(c, pe);
      it = { id, p, c, pe, text: "", partial: "", final: null, start: null, end: null };
      this.items.set(id, it);
      this.ui.$("live").append(p);
    }
    return it;
  }

  render(it) {
    const box = this.ui.$("live");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
    const committed = (it.final !== null ? it.final : it.text).trimStart();
    let partial = it.final !== null ? "" : it.partial;
    if (committed && partial && !/\s$/.test(committed) && !/^\s/.test(partial)) partial = " " + partial;
    it.c.textContent = committed;
    it.pe.textContent = committed ? partial : partial.trimStart();
    it.p.classList.toggle("done", it.final !== null);
    it.p.classList.toggle("listening", it.final === null && !committed && !partial);
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  onEvent(ev) {
    const { log, setStatus } = this.ui;
    this.lastEvent = performance.now();
    log.live.events.push({ type: ev.type, at: this.lastEvent, item_id: ev.item_id });
    switch (ev.type) {
      case "input_audio_buffer.speech_started": {
        const it = this.item(ev.item_id);
        it.start = ev.audio_start_ms / 1000;
        this.render(it);
        break;
      }
      case "input_audio_buffer.speech_stopped":
        this.item(ev.item_id).end = ev.audio_end_ms / 1000;
        break;
      case "input_audio_buffer.committed": {
        const it = this.item(ev.item_id);
        const prev = ev.previous_item_id && this.items.get(ev.previous_item_id);
        if (prev && it.p.previousElementSibling !== prev.p) prev.p.after(it.p);
        this.render(it);
        break;
      }
      case "conversation.item.input_audio_transcription.delta": {
        const it = this.item(ev.item_id);
        it.text += ev.delta || "";
        this.render(it);
        break;
      }
      case "conversation.item.input_audio_transcription.partial": {
        const it = this.item(ev.item_id);
        it.partial = ev.text || "";
        this.render(it);
        break;
      }
      case "conversation.item.input_audio_transcription.completed": {
        const it = this.item(ev.item_id);
        it.final = ev.transcript || "";
        this.render(it);
        break;
      }
      case "error": {
        const err = ev.error || { message: "unknown error" };
        log.live.errors.push(err);
        // Committing an empty buffer at Stop is expected when the server already took everything.
        if (!(this.stopping && /empty|too small/i.test(`${err.code} ${err.message}`))) {
          setStatus("error", "Error: " + err.message);
        }
        break;
      }
      default:
        break;
    }
    if (this.wake) this.wake();
  }

  /// Waits until every utterance has its final text and the server has been quiet a moment.
  async settle() {
    const t0 = performance.now();
    for (;;) {
      const now = performance.now();
      const pending = [...this.items.values()].some((it) => it.final === null);
      const quiet = now - Math.max(this.lastEvent, t0) > 2000;
      if (!this.ws || now - t0 > 120000 || (!pending && quiet)) return;
      await Promise.race([sleep(250), new Promise((r) => { this.wake = r; })]);
      this.wake = null;
    }
  }

  release() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
    this.stream = this.ctx = this.node = null;
    clearInterval(this.timer);
    const btn = this.ui.$("record");
    btn.textContent = this.ui.$("mic-mode").value === "live" ? "● Live microphone" : "● Record";
    btn.classList.remove("recording");
    btn.style.removeProperty("--level");
    this.ui.$("rec-time").textContent = "";
    this.active = false;
  }

  async stop() {
    const { setStatus } = this.ui;
    if (!this.active || this.stopping) return;
    this.stopping = true;
    // The last partial chunk from the worklet, then the microphone off.
    await Promise.race([new Promise((r) => { this.flushed = r; this.node.port.postMessage("flush"); }), sleep(500)]);
    this.flushed = null;
    const mode = this.mode;
    const ws = this.ws;
    this.release();
    const wav = wavBlob(this.pcm, RATE);
    if (mode !== "live" || !ws) {
      this.stopping = false;
      if (ws) ws.close();
      return this.ui.transcribe(wav);
    }
    setStatus("working", "Finishing the last words…");
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    await this.settle();
    if (this.ws) this.ws.close(1000, "done");
    this.stopping = false;
    this.finish(wav);
  }

  /// The live session is over: the recording goes into the player, each utterance seeks there.
  finish(wav) {
    const { $, log, player, offerDownloads, setStatus } = this.ui;
    const items = [...$("live").children].map((p) => [...this.items.values()].find((it) => it.p === p)).filter(Boolean);
    player.load(wav);
    const segments = [];
    const duration = this.pcm.reduce((n, c) => n + c.byteLength, 0) / 2 / RATE;
    let t = 0;
    items.forEach((it, i) => {
      const text = (it.final !== null ? it.final : it.text + it.partial).trim();
      if (it.final === null) { it.final = text; this.render(it); }
      const start = it.start !== null ? it.start : t;
      // An utterance cut by Stop ends where the next begins, or with the recording.
      const next = items[i + 1] && items[i + 1].start;
      const end = Math.max(start, it.end !== null ? it.end : next !== null && next !== undefined ? next : duration);
      t = end;
      if (!text) { it.p.remove(); return; }
      player.mark(start, end, it.p, null);
      segments.push({ id: segments.length, item_id: it.id, start, end, text });
    });
    const text = segments.map((s) => s.text).join(" ");
    const doc = { text, segments };
    log.done = doc;
    if (segments.length) offerDownloads(doc, doc, "recording");
    const again = document.createElement("button");
    again.type = "button";
    again.textContent = "Transcribe the recording again, with word timing";
    again.addEventListener("click", () => this.ui.transcribe(wav));
    $("stats").replaceChildren(again);
    setStatus("done", segments.length ? "Done. Click a paragraph to hear it." : "Done — no speech was heard.");
  }
}
