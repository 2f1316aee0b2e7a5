#!/usr/bin/env python3
"""Issue #13's hardening target, measured: N concurrent adversarial uploads (small FLAC files
that decode to hours of silence) against a running `amanuensis serve` with its default limits.
Reports the status codes, how often /health answered (and its slowest answer), and the
server's peak RSS (VmHWM of the PID given).

usage: tools/loadtest/hostile.py --url http://127.0.0.1:PORT --pid PID [--uploads 64] [--hours 3]

An accepted upload (200 would come after transcribing hours of silence) is abandoned after 90 s:
the server then cancels it. Python 3 standard library only. The FLAC is built here: one CONSTANT subframe of 16384 zero
samples per frame (about 10 bytes), so three hours take about 100 KB.
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse
import uuid

BLOCK = 16384


def crc8(data):
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc16(data):
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def utf8_number(n):
    if n < 0x80:
        return bytes([n])
    if n < 0x800:
        return bytes([0xC0 | (n >> 6), 0x80 | (n & 0x3F)])
    return bytes([0xE0 | (n >> 12), 0x80 | ((n >> 6) & 0x3F), 0x80 | (n & 0x3F)])


def flac_silence(seconds):
    frames = -(-seconds * 16000 // BLOCK)
    out = bytearray(b"fLaC")
    out += bytes([0x80, 0, 0, 34])
    out += BLOCK.to_bytes(2, "big") * 2 + bytes(6)
    out += ((16000 << 44) | (15 << 36) | (frames * BLOCK)).to_bytes(8, "big") + bytes(16)
    for n in range(frames):
        f = bytearray([0xFF, 0xF8, 0xE5, 0x08]) + utf8_number(n)
        f.append(crc8(f))
        f += bytes(3)
        f += crc16(f).to_bytes(2, "big")
        out += f
    return bytes(out)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def post(url, data):
    u = urllib.parse.urlparse(url)
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"silence.flac\"\r\n"
            "Content-Type: audio/flac\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=90)
    c.request("POST", "/v1/audio/transcriptions", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = c.getresponse()
    text = r.read()
    try:
        code = json.loads(text)["error"]["code"]
    except Exception:
        code = ""
    return r.status, code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--uploads", type=int, default=64)
    ap.add_argument("--hours", type=float, default=3.0)
    a = ap.parse_args()
    data = flac_silence(int(a.hours * 3600))
    print(f"{a.uploads} uploads of {len(data) / 1024:.0f} KB, each {a.hours} h of silence; "
          f"peak RSS before {peak_rss_mb(a.pid):.0f} MB")
    results = []
    lock = threading.Lock()

    def one():
        try:
            r = post(a.url, data)
        except Exception as e:
            r = ("error", str(e))
        with lock:
            results.append(r)

    t0 = time.time()
    threads = [threading.Thread(target=one) for _ in range(a.uploads)]
    for t in threads:
        t.start()
    health, slowest = 0, 0.0
    u = urllib.parse.urlparse(a.url)
    while any(t.is_alive() for t in threads):
        h0 = time.time()
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        slowest = max(slowest, time.time() - h0)
        health += ok
        time.sleep(0.2)
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    print(f"done in {time.time() - t0:.1f} s; answers: " + ", ".join(f"{k[0]} {k[1]} x{v}" for k, v in sorted(counts.items(), key=str)))
    print(f"/health answered {health} times, slowest {slowest:.2f} s; server peak RSS {peak_rss_mb(a.pid):.0f} MB")


if __name__ == "__main__":
    main()
