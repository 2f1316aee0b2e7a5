#!/usr/bin/env python3
"""Replays a WAV file over the realtime transcription WebSocket at a chosen speed and prints
the live-transcription figures of issue #12 part 5.

    python tools/realtime/replay.py speech.wav --url ws://127.0.0.1:9004/v1/realtime?intent=transcription \
        --speed 1.0 --reference speech.txt --streams 1 --out replay-out/

Each stream is a GA transcription session (`session.update` with `turn_detection` server_vad and
`include` [partial, words]); the file is sent as PCM16 in `--chunk-ms` appends on a real-time
schedule (`--speed 1.0` = real time, 2.0 = twice as fast), then `--tail-secs` of silence so the
VAD ends the last utterance. Figures (wall clock, per stream and over all streams):

- committed text (the `completed` transcripts in order) and its WER against `--reference`
  (whisper's normalizer through `amanuensis wer` when the binary is found, else a simple one:
  the output says which);
- word latency: a delta's arrival minus the moment its word's end (`words[].end`, our include)
  was due to be sent on the schedule; median and p95;
- first-partial latency per utterance: the arrival of its first partial or delta minus the
  moment its `speech_started.audio_start_ms` was due; median, p95, max;
- send lag: how far sending fell behind the schedule (the server slows a client it cannot
  follow by not reading the socket), and the trend of the word latency over the file (least
  squares, seconds per minute of audio): a stream keeps up when both stay small;
- `lag.csv` (one row per word) and `lag.svg` (latency over audio time) in `--out`.

Needs Python 3.9+ and the `websockets` package (pinned in tools/sdk_check/requirements.txt;
.ci/run installs it in ~/.cache/amanuensis-sdk-venv).
"""

import argparse
import array
import asyncio
import base64
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import wave

try:
    import websockets
except ImportError:
    sys.exit("replay.py needs the `websockets` package: pip install -r tools/sdk_check/requirements.txt "
             "(or run it with ~/.cache/amanuensis-sdk-venv/bin/python)")


def load_pcm16(path, rate_arg):
    """The WAV file as mono PCM16 bytes at the rate to send (16000 or 24000)."""
    with wave.open(path) as w:
        if w.getsampwidth() != 2:
            sys.exit(f"{path}: only 16-bit PCM WAV files are read (convert it first, e.g. with `ffmpeg -i IN -ac 1 -ar 16000 OUT.wav`)")
        rate, channels = w.getframerate(), w.getnchannels()
        samples = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder != "little":
        samples.byteswap()
    if channels > 1:
        samples = array.array("h", (sum(samples[i:i + channels]) // channels for i in range(0, len(samples), channels)))
    target = rate_arg if rate_arg else (rate if rate in (16000, 24000) else 24000)
    if target != rate:
        # Linear interpolation: enough for a benchmark's input, and the server's own
        # resampler (24 -> 16 kHz) is what is under test.
        n = len(samples) * target // rate
        step = rate / target
        out = array.array("h", bytes(2 * n))
        last = len(samples) - 1
        for i in range(n):
            t = i * step
            k = int(t)
            a = samples[k if k < last else last]
            b = samples[k + 1 if k + 1 < last else last]
            out[i] = int(round(a + (b - a) * (t - k)))
        samples = out
    data = samples.tobytes() if sys.byteorder == "little" else _swapped(samples)
    return data, target


def _swapped(samples):
    s = array.array("h", samples)
    s.byteswap()
    return s.tobytes()


def pct(values, q):
    """The q-th percentile (nearest rank, q in 0..100)."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100 * len(v) + 0.5)) - 1))
    return v[k]


def slope(xs, ys):
    """Least-squares slope of ys over xs (nan with fewer than two points)."""
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


class Stream:
    def __init__(self, index):
        self.index = index
        self.events = []          # (wall seconds since the schedule's start, event)
        self.send_lag = []        # (audio seconds sent, seconds behind the schedule)
        self.error = None
        self.t0 = None


async def run_stream(index, args, pcm, rate, start_at):
    st = Stream(index)
    chunk_bytes = max(2, int(rate * args.chunk_ms / 1000) * 2)
    tail = bytes(2 * int(rate * args.tail_secs))
    audio = pcm + tail
    total_audio = len(pcm) / 2 / rate
    session = {
        "type": "transcription",
        "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": rate},
            "transcription": {k: v for k, v in (("model", args.model), ("language", args.language)) if v},
            "turn_detection": {"type": "server_vad", "threshold": args.vad_threshold,
                               "prefix_padding_ms": args.prefix_padding_ms, "silence_duration_ms": args.silence_duration_ms},
        }},
        "include": ["item.input_audio_transcription.partial", "item.input_audio_transcription.words"],
    }
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    async with websockets.connect(args.url, max_size=None, open_timeout=60, ping_interval=None, close_timeout=5) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if first.get("type") == "error":
            st.error = first["error"]
            return st
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        while True:
            ev = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if ev.get("type") == "error":
                st.error = ev["error"]
                return st
            if ev.get("type") == "session.updated":
                break

        st.t0 = time.monotonic()
        done_sending = asyncio.Event()

        async def reader():
            try:
                async for msg in ws:
                    ev = json.loads(msg)
                    st.events.append((time.monotonic() - st.t0, ev))
                    if ev.get("type") == "error" and st.error is None:
                        st.error = ev["error"]
            except websockets.ConnectionClosed:
                pass

        read_task = asyncio.create_task(reader())
        sent = 0
        for off in range(0, len(audio), chunk_bytes):
            piece = audio[off:off + chunk_bytes]
            due = st.t0 + off / 2 / rate / args.speed
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            try:
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(piece).decode()}))
            except websockets.ConnectionClosed:
                break
            sent = (off + len(piece)) / 2 / rate
            # How far behind the schedule this chunk went out (its end was due then).
            st.send_lag.append((sent, max(0.0, time.monotonic() - (st.t0 + sent / args.speed))))
            if st.error and st.error.get("type") == "server_error":
                break
        done_sending.set()
        # Wait for every utterance the VAD started to complete, or for quiet.
        deadline = time.monotonic() + args.drain_secs
        while time.monotonic() < deadline and not read_task.done():
            started = {e["item_id"] for _, e in st.events if e.get("type") == "input_audio_buffer.speech_started"}
            completed = {e["item_id"] for _, e in st.events if e.get("type") == "conversation.item.input_audio_transcription.completed"}
            if started and started <= completed:
                break
            await asyncio.sleep(0.1)
        await ws.close()
        read_task.cancel()
    st.audio_seconds = total_audio
    return st


def find_amanuensis(arg):
    if arg:
        return arg
    found = shutil.which("amanuensis")
    if found:
        return found
    here = os.path.dirname(os.path.abspath(__file__))
    roots = [os.environ.get("CARGO_TARGET_DIR", ""), os.path.join(here, "..", "..", "target")]
    for root in roots:
        for prof in ("release", "debug"):
            p = os.path.join(root, prof, "amanuensis")
            if root and os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    return None


def simple_wer(ref, hyp):
    norm = lambda s: re.sub(r"[^\w\s']", " ", s.lower()).split()
    r, h = norm(ref), norm(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r):
        cur = [i + 1] + [0] * len(h)
        for j, hw in enumerate(h):
            cur[j + 1] = min(prev[j] + (rw != hw), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return 100.0 * prev[len(h)] / max(1, len(r))


def wer(reference_path, hypothesis, binary):
    """(percent, how it was computed)."""
    ref = open(reference_path, encoding="utf-8").read()
    if binary:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write(hypothesis)
        try:
            out = subprocess.run([binary, "wer", reference_path, f.name], capture_output=True, text=True, check=True).stdout.strip()
            return float(out.rstrip("%")), f"whisper's normalizer ({binary} wer)"
        except (subprocess.CalledProcessError, ValueError, OSError) as e:
            print(f"note: `{binary} wer` failed ({e}); using the simple normalizer", file=sys.stderr)
        finally:
            os.unlink(f.name)
    return simple_wer(ref, hypothesis), "simple normalizer (lowercase, no punctuation): amanuensis binary not found"


def analyse(st, speed):
    """Figures of one stream."""
    items, order = {}, []
    for wall, e in st.events:
        t, item = e.get("type", ""), e.get("item_id")
        if item is None:
            continue
        if item not in items:
            items[item] = {"start_ms": None, "first": None, "text": None}
            order.append(item)
        it = items[item]
        if t == "input_audio_buffer.speech_started":
            it["start_ms"] = e["audio_start_ms"]
        elif t in ("conversation.item.input_audio_transcription.partial", "conversation.item.input_audio_transcription.delta"):
            text = e.get("text") if t.endswith(".partial") else e.get("delta")
            if it["first"] is None and text and text.strip():
                it["first"] = wall
        elif t == "conversation.item.input_audio_transcription.completed":
            it["text"] = e["transcript"]
    words = []  # (audio end s, wall s, latency s, word)
    for wall, e in st.events:
        if e.get("type") == "conversation.item.input_audio_transcription.delta":
            for w in e.get("words") or []:
                words.append((w["end"], wall, wall - w["end"] / speed, w["word"]))
    first = [it["first"] - it["start_ms"] / 1000 / speed for it in items.values() if it["first"] is not None and it["start_ms"] is not None]
    text = " ".join(items[i]["text"].strip() for i in order if items[i]["text"])
    lag_at = lambda a: next((l for s, l in st.send_lag if s >= a), st.send_lag[-1][1] if st.send_lag else 0.0)
    return {"text": text, "words": [(a, w, l, lag_at(a), t) for a, w, l, t in words], "first": first,
            "utterances": sum(1 for it in items.values() if it["start_ms"] is not None),
            "completed": sum(1 for it in items.values() if it["text"] is not None),
            "max_send_lag": max((l for _, l in st.send_lag), default=0.0)}


def svg_plot(path, series, targets=(2.5, 4.0)):
    """Word latency (s) over audio time (s), one polyline per stream; hand-written SVG."""
    W, H, L, R, T, B = 900, 420, 60, 20, 20, 45
    pts = [p for s in series for p in s]
    xmax = max((x for x, _ in pts), default=1.0) or 1.0
    ymax = max([y for _, y in pts] + list(targets) + [1.0]) * 1.1
    sx = lambda x: L + (W - L - R) * x / xmax
    sy = lambda y: H - B - (H - T - B) * max(0.0, y) / ymax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for i in range(6):
        x = xmax * i / 5
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x:.0f}</text>')
        y = ymax * i / 5
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - R}" y2="{sy(y):.1f}" stroke="#eee"/>')
    for t in targets:
        out.append(f'<line x1="{L}" y1="{sy(t):.1f}" x2="{W - R}" y2="{sy(t):.1f}" stroke="#c33" stroke-dasharray="4 4"/>')
        out.append(f'<text x="{W - R - 4}" y="{sy(t) - 4:.1f}" text-anchor="end" fill="#c33">{t:g} s</text>')
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf"]
    for i, s in enumerate(series):
        if s:
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(s))
            out.append(f'<polyline fill="none" stroke="{colours[i % len(colours)]}" stroke-width="1.2" points="{d}"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">audio time (s)</text>')
    out.append(f'<text x="14" y="{(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 14 {(T + H - B) / 2})">word end to delta (s)</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wav", help="16-bit PCM WAV file (mono or not; any rate)")
    ap.add_argument("--url", default="ws://127.0.0.1:9004/v1/realtime?intent=transcription")
    ap.add_argument("--speed", type=float, default=1.0, help="1.0 = real time (default), 2.0 = twice as fast")
    ap.add_argument("--streams", type=int, default=1, help="concurrent sessions replaying the file (default 1)")
    ap.add_argument("--stagger", type=float, default=0.0, help="seconds between the streams' starts")
    ap.add_argument("--reference", help="reference text file for the WER")
    ap.add_argument("--rate", type=int, choices=(16000, 24000), help="rate to send (default: the file's if 16 or 24 kHz, else 24 kHz)")
    ap.add_argument("--chunk-ms", type=float, default=100.0, help="audio per append (default 100 ms)")
    ap.add_argument("--tail-secs", type=float, default=2.0, help="silence sent after the file (default 2 s)")
    ap.add_argument("--drain-secs", type=float, default=60.0, help="longest wait for the last utterances after sending")
    ap.add_argument("--model", help="transcription.model to send (default: none, the server's)")
    ap.add_argument("--language", default="en", help="transcription.language (default en; '' to detect)")
    ap.add_argument("--vad-threshold", type=float, default=0.5)
    ap.add_argument("--prefix-padding-ms", type=int, default=300)
    ap.add_argument("--silence-duration-ms", type=int, default=500)
    ap.add_argument("--out", default="replay-out", help="directory for lag.csv and lag.svg (default replay-out)")
    ap.add_argument("--amanuensis", help="the amanuensis binary for `wer` (default: PATH, then $CARGO_TARGET_DIR, target/)")
    ap.add_argument("--quiet", action="store_true", help="do not print the committed text")
    args = ap.parse_args()
    if args.speed <= 0 or args.streams < 1:
        sys.exit("--speed must be above 0 and --streams at least 1")

    pcm, rate = load_pcm16(args.wav, args.rate)
    seconds = len(pcm) / 2 / rate
    print(f"{args.wav}: {seconds:.1f} s, sent at {rate} Hz in {args.chunk_ms:g} ms appends, speed {args.speed:g}x, {args.streams} stream(s) -> {args.url}")

    async def all_streams():
        start = time.monotonic() + 0.2
        return await asyncio.gather(*(run_stream(i, args, pcm, rate, start + i * args.stagger) for i in range(args.streams)), return_exceptions=True)

    results = asyncio.run(all_streams())
    os.makedirs(args.out, exist_ok=True)
    binary = find_amanuensis(args.amanuensis)
    rows, series, all_lat, all_first = [], [], [], []
    failed = 0
    print(f"\n{'stream':>6} {'utt':>4} {'done':>4} {'words':>6} {'lat med':>8} {'lat p95':>8} {'1st med':>8} {'1st p95':>8} {'send lag':>9} {'trend s/min':>11} {'WER':>7}")
    wer_note, text0 = None, None
    for i, st in enumerate(results):
        if isinstance(st, BaseException):
            print(f"{i:>6} failed: {st!r}")
            failed += 1
            series.append([])
            continue
        if st.error and st.t0 is None:
            print(f"{i:>6} refused: {st.error.get('code')}: {st.error.get('message')}")
            failed += 1
            series.append([])
            continue
        a = analyse(st, args.speed)
        lat = [w[2] for w in a["words"]]
        all_lat += lat
        all_first += a["first"]
        trend = slope([w[0] / 60 for w in a["words"]], lat)
        w = ""
        if args.reference:
            pct_wer, wer_note = wer(args.reference, a["text"], binary)
            w = f"{pct_wer:.2f}%"
        print(f"{i:>6} {a['utterances']:>4} {a['completed']:>4} {len(lat):>6} {statistics.median(lat) if lat else float('nan'):>8.2f} {pct(lat, 95):>8.2f} "
              f"{statistics.median(a['first']) if a['first'] else float('nan'):>8.2f} {pct(a['first'], 95):>8.2f} {a['max_send_lag']:>9.2f} {trend:>11.3f} {w:>7}")
        if st.error:
            print(f"       error event: {st.error.get('code')}: {st.error.get('message')}")
        for audio_end, wall, l, send_lag, word in a["words"]:
            rows.append((i, f"{audio_end:.3f}", f"{wall:.3f}", f"{l:.3f}", f"{send_lag:.3f}", word))
        series.append([(x[0], x[2]) for x in a["words"]])
        if i == 0:
            text0 = a["text"]
    if text0 is not None and not args.quiet:
        print(f"\ncommitted text (stream 0):\n{text0}\n")
    if all_lat:
        print(f"all streams: word latency median {statistics.median(all_lat):.2f} s, p95 {pct(all_lat, 95):.2f} s over {len(all_lat)} words; "
              f"first partial median {statistics.median(all_first) if all_first else float('nan'):.2f} s, p95 {pct(all_first, 95):.2f} s, "
              f"max {max(all_first) if all_first else float('nan'):.2f} s over {len(all_first)} utterances")
    if wer_note:
        print(f"WER: {wer_note}")
    print("A stream keeps up with real time when its send lag stays near 0 (the server read every append on time) and its trend is near 0 s/min.")
    with open(os.path.join(args.out, "lag.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["stream", "audio_end_s", "arrival_s", "latency_s", "send_lag_s", "word"])
        wr.writerows(rows)
    svg_plot(os.path.join(args.out, "lag.svg"), series)
    print(f"wrote {os.path.join(args.out, 'lag.csv')} and {os.path.join(args.out, 'lag.svg')}")
    sys.exit(1 if failed == len(results) else 0)


if __name__ == "__main__":
    main()
