// Drives the amanuensis web page in real headless Chromium (Playwright over the system's
// chromium): uploads files, records from a fake microphone fed by a WAV file, and reports on
// stdout, as one JSON object, what the page showed. The Rust test (tests/browser.rs) starts
// the server, runs this script and judges the report.
//
// usage: node page_test.mjs CONFIG_JSON
//   {"chromium", "base", "long_wav", "short_wav", "mic_wav", "mic_seconds", "download_dir"}

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
  return fs.readFileSync(file, "utf8");
}

async function clear(page) {
  await page.evaluate(() => { window.__amanuensis.done = null; window.__amanuensis.error = null; });
}

async function waitDone(page) {
  await page.waitForFunction(() => window.__amanuensis.done || window.__amanuensis.error, null, { timeout: 180000 });
}

async function collect(page, downloads) {
  const state = await page.evaluate(() => ({
    done: window.__amanuensis.done,
    error: window.__amanuensis.error,
    events: window.__amanuensis.events,
  }));
  const out = {
    status: await page.textContent("#status"),
    status_state: await page.getAttribute("#status", "data-state"),
    transcript: await page.textContent("#transcript"),
    segments: await page.$$eval("#segments li", (lis) => lis.map((li) => li.textContent)),
    events: state.events,
    error: state.error,
    done_text: state.done ? state.done.text : null,
  };
  if (downloads && state.done) {
    for (const f of ["txt", "srt", "vtt"]) out[f] = await readDownload(page, `dl-${f}`);
  }
  return out;
}

try {
  const context = await browser.newContext({ acceptDownloads: true });
  await context.grantPermissions(["microphone"], { origin: cfg.base });
  const page = await context.newPage();
  page.on("console", (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => report.console.push(`pageerror: ${e.message}`));
  await page.goto(cfg.base + "/");
  await page.waitForFunction(() => /ok$/.test(document.getElementById("server-status").textContent), null, { timeout: 30000 });
  report.header = await page.textContent("#server-status");

  // A short clip, greedy: the exact transcript, and the three downloads.
  await page.selectOption("#beam", "1");
  await clear(page);
  await page.setInputFiles("#file", cfg.short_wav);
  await page.click("#go");
  await waitDone(page);
  report.runs.short = await collect(page, true);

  // A clip longer than one 30 s window: segments must appear before the end.
  await clear(page);
  await page.setInputFiles("#file", cfg.long_wav);
  await page.click("#go");
  await waitDone(page);
  report.runs.long = await collect(page, false);

  // The microphone: record, stop, the recording is converted to WAV and transcribed.
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
  await page.click("#go");
  await waitDone(page);
  report.runs.bad = await collect(page, false);
} catch (e) {
  report.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + "\n");
