// Drives the amanuensis web page in real headless Chromium (Playwright over the system's
// chromium): uploads files (file input and a synthetic drag and drop), plays them, records
// from a fake microphone fed by a WAV file (uploaded, or live over the WebSocket), looks at a
// phone-sized viewport, and reports on stdout, as one JSON object, what the page showed. The
// Rust test (tests/browser.rs) starts the server, runs this script and judges the report.
//
// usage: node page_test.mjs CONFIG_JSON
//   {"suite": "upload" | "live", "chromium", "base", "long_wav", "short_wav", "mic_wav",
//    "mic_seconds", "download_dir"}

import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const report = { runs: {}, console: [] };

// Playwright gives the browser a fresh temporary profile (--user-data-dir) of its own.
let browser;
try {
  browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
      // A fake microphone that plays the given WAV file, and no permission prompt.
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${cfg.mic_wav}`,
    ],
  });
} catch (e) {
  report.failure = "cannot start chromium: " + String(e && e.stack ? e.stack : e);
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(0);
}

async function readDownload(page, id) {
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click(`#${id}`)]);
  const file = path.join(cfg.download_dir, dl.suggestedFilename());
  await dl.saveAs(file);
  return { name: dl.suggestedFilename(), body: fs.readFileSync(file, "utf8") };
}

async function clear(page) {
  await page.evaluate(() => { window.__amanuensis.done = null; window.__amanuensis.error = null; });
}

async function waitDone(page) {
  await page.waitForFunction(() => window.__amanuensis.done || window.__amanuensis.error, null, { timeout: 240000 });
}

async function collect(page, downloads) {
  const state = await page.evaluate(() => ({
    done: window.__amanuensis.done,
    error: window.__amanuensis.error,
    events: window.__amanuensis.events,
    upload: window.__amanuensis.upload,
    live: window.__amanuensis.live,
  }));
  // The player's duration is known once its metadata loaded (a fresh blob URL may still be
  // loading when the transcription is done): wait for it, or report what there is.
  await page
    .waitForFunction(() => { const a = document.getElementById("player"); return !a.currentSrc || a.readyState >= 1; }, null, { timeout: 10000 })
    .catch(() => {});
  const out = {
    status: await page.textContent("#status"),
    status_state: await page.getAttribute("#status", "data-state"),
    transcript: await page.textContent("#transcript"),
    segments: await page.$$eval("#segments li", (lis) => lis.map((li) => li.textContent)),
    live_items: await page.$$eval("#live .item", (ps) => ps.map((p) => p.textContent)),
    events: state.events,
    upload: state.upload,
    live: state.live,
    error: state.error,
    done: state.done,
    done_text: state.done ? state.done.text : null,
    player: await page.evaluate(() => {
      const a = document.getElementById("player");
      return { hidden: a.hidden, has_src: !!a.currentSrc, duration: a.duration };
    }),
  };
  if (downloads && state.done) {
    for (const f of ["txt", "srt", "vtt", "json"]) {
      const d = await readDownload(page, `dl-${f}`);
      out[f] = d.body;
      out[`${f}_name`] = d.name;
    }
  }
  return out;
}

/// Clicks `selector` and says where the player went and what is highlighted.
async function clickSeek(page, selector) {
  await page.evaluate(() => { const a = document.getElementById("player"); a.pause(); a.currentTime = 0; });
  await page.waitForFunction(() => document.getElementById("player").readyState >= 1, null, { timeout: 10000 });
  const target = await page.$eval(selector, (el) => Number(el.dataset.t));
  await page.click(selector);
  await page.waitForTimeout(300);
  const r = await page.evaluate(() => {
    const a = document.getElementById("player");
    const cur = document.querySelector("#segments .current, #live .current");
    return { time: a.currentTime, paused: a.paused, current: cur ? cur.textContent : null };
  });
  await page.evaluate(() => document.getElementById("player").pause());
  return { target, ...r };
}

async function openPage(context) {
  const page = await context.newPage();
  page.on("console", (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => report.console.push(`pageerror: ${e.message}`));
  await page.goto(cfg.base + "/");
  await page.waitForFunction(() => /ok$/.test(document.getElementById("server-status").textContent), null, { timeout: 30000 });
  return page;
}

async function uploadSuite(context) {
  const page = await openPage(context);
  report.header = await page.textContent("#server-status");
  await page.click("#options summary");
  await page.selectOption("#beam", "1");

  // A short clip, greedy, no word timing: the exact transcript, and the downloads.
  await page.uncheck("#words");
  await clear(page);
  await page.setInputFiles("#file", cfg.short_wav);
  await waitDone(page);
  report.runs.short = await collect(page, true);

  // The same with word timing: words in the json, a word click seeks and highlights it.
  await page.check("#words");
  await clear(page);
  await page.setInputFiles("#file", cfg.short_wav);
  await waitDone(page);
  report.runs.words = await collect(page, true);
  report.runs.words.word_count = await page.$$eval("#segments .w", (w) => w.length);
  report.runs.words.seek = await clickSeek(page, "#segments .w:nth-child(7)");

  // A clip longer than one 30 s window: progress shown, segments appear before the end, and
  // a click on the second segment's time seeks the player there.
  await clear(page);
  await page.setInputFiles("#file", cfg.long_wav);
  await page.waitForSelector("#progress", { state: "visible", timeout: 10000 });
  report.runs.long_progress_visible = true;
  await waitDone(page);
  report.runs.long = await collect(page, false);
  report.runs.long.progress_hidden_after = await page.$eval("#progress", (p) => p.hidden);
  report.runs.long.seek = await clickSeek(page, "#segments li:nth-child(2) .time");

  // The microphone, "record, then transcribe": the recording is uploaded as WAV.
  await page.selectOption("#mic-mode", "record");
  await clear(page);
  await page.click("#record");
  await page.waitForFunction(() => document.getElementById("record").classList.contains("recording"), null, { timeout: 10000 });
  await page.waitForTimeout(cfg.mic_seconds * 1000);
  await page.click("#record");
  await waitDone(page);
  report.runs.mic = await collect(page, false);

  // An upload the server refuses shows its message.
  await clear(page);
  await page.setInputFiles("#file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not audio") });
  await waitDone(page);
  report.runs.bad = await collect(page, false);

  // A file dropped on the page (a synthetic drop carrying a DataTransfer).
  await clear(page);
  const b64 = fs.readFileSync(cfg.short_wav).toString("base64");
  report.runs.drop_overlay = await page.evaluate((b64) => {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "dropped.wav", { type: "audio/wav" }));
    const fire = (type) => document.querySelector("main").dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
    fire("dragenter");
    fire("dragover");
    const shown = !document.getElementById("drop").hidden;
    fire("drop");
    return { shown_while_dragging: shown, hidden_after_drop: document.getElementById("drop").hidden };
  }, b64);
  await waitDone(page);
  report.runs.drop = await collect(page, true);
  await page.close();
  await liveProtocolSuite(context);

  // A phone: 375 px wide, nothing wider than the screen, before and after a transcript.
  const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const p = await openPage(phone);
  const width = () => p.evaluate(() => document.scrollingElement.scrollWidth);
  const widths = { empty: await width() };
  await p.click("#options summary");
  widths.options = await width();
  await clear(p);
  await p.setInputFiles("#file", cfg.long_wav);
  await waitDone(p);
  widths.transcript = await width();
  report.runs.phone = { widths, status_state: await p.getAttribute("#status", "data-state"), viewport: p.viewportSize() };
  await phone.close();
}

/// The page's side of the live protocol, against a scripted WebSocket server (the test of the
/// real one is liveSuite): what it sends, how it shows partial, committed and final text.
async function liveProtocolSuite(context) {
  const page = await context.newPage();
  page.on("pageerror", (e) => report.console.push(`pageerror: ${e.message}`));
  const got = { first: null, types: [], samples: 0, url: null };
  await page.routeWebSocket(/\/v1\/realtime/, (ws) => {
    got.url = ws.url();
    let n = 0;
    const send = (o) => ws.send(JSON.stringify(o));
    const item = "conversation.item.input_audio_transcription";
    ws.onMessage((m) => {
      const ev = JSON.parse(m);
      if (!got.first) got.first = ev;
      if (!got.types.includes(ev.type)) got.types.push(ev.type);
      if (ev.type === "session.update") { send({ type: "session.created" }); send({ type: "session.updated" }); }
      if (ev.type === "input_audio_buffer.append") {
        got.samples += Buffer.from(ev.audio, "base64").length / 2;
        n++;
        if (n === 2) send({ type: "input_audio_buffer.speech_started", item_id: "i1", audio_start_ms: 300 });
        if (n === 4) send({ type: `${item}.partial`, item_id: "i1", text: " And Mr. John" });
        if (n === 6) { send({ type: `${item}.delta`, item_id: "i1", delta: " And Mr. John" }); send({ type: `${item}.partial`, item_id: "i1", text: "Dashwood had" }); }
        if (n === 8) { send({ type: "input_audio_buffer.speech_stopped", item_id: "i1", audio_end_ms: 1800 }); send({ type: "input_audio_buffer.committed", item_id: "i1", previous_item_id: null }); }
        if (n === 10) send({ type: `${item}.completed`, item_id: "i1", transcript: " And Mr. John Dashwood had then leisure." });
        if (n === 12) { send({ type: "input_audio_buffer.speech_started", item_id: "i2", audio_start_ms: 2100 }); send({ type: `${item}.partial`, item_id: "i2", text: " to consider" }); }
      }
      if (ev.type === "input_audio_buffer.commit") {
        send({ type: "input_audio_buffer.committed", item_id: "i2", previous_item_id: "i1" });
        setTimeout(() => send({ type: `${item}.completed`, item_id: "i2", transcript: " To consider how much." }), 500);
      }
    });
  });
  await page.goto(cfg.base + "/");
  await page.waitForFunction(() => /ok$/.test(document.getElementById("server-status").textContent), null, { timeout: 30000 });
  await clear(page);
  await page.click("#record");
  const snap = () => page.evaluate(() => Array.from(document.querySelectorAll("#live .item"), (p) => ({
    committed: p.querySelector(".committed").textContent,
    partial: p.querySelector(".partial").textContent,
    committed_color: getComputedStyle(p.querySelector(".committed")).color,
    partial_color: getComputedStyle(p.querySelector(".partial")).color,
  })));
  const seen = {};
  await page.waitForFunction(() => /Dashwood had/.test(document.querySelector("#live .partial")?.textContent || ""), null, { timeout: 20000 });
  seen.partial = await snap();
  await page.waitForFunction(() => document.querySelectorAll("#live .item").length === 2, null, { timeout: 20000 });
  seen.second = await snap();
  const t0 = Date.now();
  await page.click("#record");
  await waitDone(page);
  const out = await collect(page, true);
  out.stop_to_done_ms = Date.now() - t0;
  out.seen = seen;
  out.sent = got;
  out.seek = await clickSeek(page, "#live .item:first-child");
  report.runs.live_protocol = out;
  await page.close();
}

async function liveSuite(context) {
  const page = await openPage(context);
  report.header = await page.textContent("#server-status");
  await clear(page);
  await page.click("#record");
  await page.waitForFunction(() => document.getElementById("record").classList.contains("recording"), null, { timeout: 10000 });
  // What the live box shows while the microphone plays, every 250 ms.
  const seen = [];
  const t0 = Date.now();
  while (Date.now() - t0 < cfg.mic_seconds * 1000) {
    seen.push(await page.evaluate(() => ({
      committed: Array.from(document.querySelectorAll("#live .committed"), (e) => e.textContent).join("|"),
      partial: Array.from(document.querySelectorAll("#live .partial"), (e) => e.textContent).join("|"),
      partial_color: (() => { const e = document.querySelector("#live .partial"); return e ? getComputedStyle(e).color : null; })(),
      status_state: document.getElementById("status").dataset.state,
    })));
    // Stop once the sentence has shown up live (after at least 3 s), as a user would.
    const last = seen[seen.length - 1];
    if (Date.now() - t0 > 3000 && /dashwood/i.test(last.committed + " " + last.partial)) break;
    await page.waitForTimeout(250);
  }
  report.runs.live_seen = seen;
  await page.click("#record");
  await waitDone(page);
  report.runs.live = await collect(page, true);
  if (await page.$("#live .item[data-t]")) {
    report.runs.live.seek = await clickSeek(page, "#live .item:last-child");
  }
}

try {
  const context = await browser.newContext({ acceptDownloads: true });
  await context.grantPermissions(["microphone"], { origin: cfg.base });
  if (cfg.suite === "live") await liveSuite(context);
  else await uploadSuite(context);
} catch (e) {
  report.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
