#!/usr/bin/env python3
"""Load tool for `amanuensis serve`: cuts a long recording into per-sentence clips and sends
them to the server from N concurrent clients (closed loop: each client sends its next clip as
soon as the previous answer arrives), then reports throughput (audio seconds per wall second),
p50/p99 latency and the word error rate of the answers.

Standard library only. Example (see docs/BENCHMARKS.md, "## Server"):

    amanuensis serve --model tiny.en --port 9004 &
    python3 tools/loadtest/loadtest.py --url http://127.0.0.1:9004 \
        --wav /work/shared/audio/long/long.wav --segments /work/shared/audio/long/long_segments.tsv \
        --concurrency 1,4,16
"""

import argparse
import http.client
import io
import json
import re
import sys
import threading
import time
import urllib.parse
import wave


def read_clips(wav_path, tsv_path, pad):
    """(seconds, wav_bytes, reference_text) per row of the segments table."""
    with wave.open(wav_path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth()) != (1, 2):
            sys.exit(f"{wav_path}: expected 16-bit mono WAV")
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    clips = []
    with open(tsv_path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for line in f:
            row = line.rstrip("\n").split("\t")
            if len(row) < len(header):
                continue
            start = max(0.0, float(row[col["start_s"]]) - pad)
            end = float(row[col["end_s"]]) + pad
            a, b = int(start * rate) * 2, min(len(pcm), int(end * rate) * 2)
            buf = io.BytesIO()
            with wave.open(buf, "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate)
                out.writeframes(pcm[a:b])
            clips.append(((b - a) / 2 / rate, buf.getvalue(), row[col["text"]]))
    return clips


BOUNDARY = "amanuensis-loadtest-5b1d"


def multipart(fields, wav):
    parts = []
    for k, v in fields.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\n".encode() + wav + b"\r\n"
    )
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_level(url, path, clips, clients, fields, timeout):
    u = urllib.parse.urlsplit(url)
    lock = threading.Lock()
    nxt = [0]
    results = []  # (latency, status, seconds, text, reference)

    def client():
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(clips):
                break
            seconds, wav, ref = clips[i]
            body = multipart(fields, wav)
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
                data, status = str(e).encode(), 0
            lat = time.perf_counter() - t0
            text = json.loads(data).get("text", "") if status == 200 else ""
            with lock:
                results.append((lat, status, seconds, text, ref))
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r[1] == 200]
    errs = sum(edit_distance(words(r[4]), words(r[3])) for r in ok)
    nref = sum(len(words(r[4])) for r in ok)
    lats = [r[0] for r in ok]
    return {
        "clients": clients,
        "requests": len(results),
        "ok": len(ok),
        "errors": {str(s): sum(1 for r in results if r[1] == s) for s in sorted({r[1] for r in results if r[1] != 200})},
        "audio_seconds": sum(r[2] for r in ok),
        "wall_seconds": wall,
        "throughput_audio_s_per_s": sum(r[2] for r in ok) / wall,
        "requests_per_s": len(ok) / wall,
        "latency_p50_s": percentile(lats, 50),
        "latency_p99_s": percentile(lats, 99),
        "latency_max_s": max(lats) if lats else float("nan"),
        "wer": errs / nref if nref else float("nan"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:9004")
    ap.add_argument("--path", default="/v1/audio/transcriptions")
    ap.add_argument("--wav", required=True, help="long 16 kHz mono 16-bit WAV")
    ap.add_argument("--segments", required=True, help="TSV with start_s, end_s, text columns")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N clips")
    ap.add_argument("--beam-size", type=int, default=0, help="beam_size field (0 = server default)")
    ap.add_argument("--pad", type=float, default=0.1, help="seconds of context added around each sentence")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    clips = read_clips(args.wav, args.segments, args.pad)
    if args.limit:
        clips = clips[: args.limit]
    fields = {"model": "whisper-1", "response_format": "json"}
    if args.beam_size:
        fields["beam_size"] = str(args.beam_size)
    total = sum(c[0] for c in clips)
    print(f"{len(clips)} clips, {total:.1f} s of audio ({min(c[0] for c in clips):.1f}-{max(c[0] for c in clips):.1f} s each)")
    # Warm-up: page in the model and the allocator before timing anything.
    run_level(args.url, args.path, clips[:2], 1, fields, args.timeout)
    out = []
    print("| clients | requests | ok | throughput (audio s/s) | req/s | p50 latency (s) | p99 latency (s) | WER |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in [int(x) for x in args.concurrency.split(",")]:
        r = run_level(args.url, args.path, clips, c, fields, args.timeout)
        out.append(r)
        print(
            f"| {c} | {r['requests']} | {r['ok']} | {r['throughput_audio_s_per_s']:.2f} | {r['requests_per_s']:.2f} "
            f"| {r['latency_p50_s']:.2f} | {r['latency_p99_s']:.2f} | {100 * r['wer']:.1f}% |"
            + (f" errors {r['errors']}" if r["errors"] else ""),
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"clips": len(clips), "audio_seconds": total, "levels": out}, f, indent=1)


if __name__ == "__main__":
    main()
