#!/usr/bin/env python3
"""Fault injection against a real `amanuensis serve` (tiny.en, f32, beam 1) and its durable jobs.

Usage: tools/faults/faults.py [--bin PATH] [--only NAME ...] [--keep]

Builds nothing: it runs the `amanuensis` binary given (default: $CARGO_TARGET_DIR/debug/amanuensis,
else target/debug/amanuensis), with a temporary --data-dir and the tiny.en model from the model
store ($AMANUENSIS_MODELS, default ~/.cache/amanuensis/models). Each scenario is one function in
SCENARIOS: it injects its faults, and every job the server accepted (answered 202) must end
`done` with the reference text of its clip (testdata/transcripts/tiny.en_float32_b1.json,
faster-whisper's). Prints a table — fault, injected, jobs accepted, jobs completed, jobs lost —
and exits non-zero if a job was lost or a check failed. The NATS scenario (`serve --broker` and
`amanuensis worker`s) also needs nats-server (on PATH or in /usr/sbin); without it the scenario
is reported skipped, unless CI is set: then it fails.

Python 3 standard library only: it needs no build and no packages, and drives processes
(SIGKILL, restarts) and raw sockets (vanishing and trickling clients) directly.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTDATA = os.path.join(ROOT, "testdata")
# Short clips (1 to 4 s): a job takes well under a second on tiny.en.
CLIPS = ["librivox_0880", "arctic_a0007", "goforward", "cards_001", "cards_003", "alsa_Front_Left"]
JOB_DEADLINE = 240.0


def log(msg):
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Failure(Exception):
    """A check that failed (the scenario is reported as failed)."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


# ---- clips and reference texts ----------------------------------------------------------------

def load_clips():
    files = {}
    with open(os.path.join(TESTDATA, "audio", "clips.tsv")) as f:
        next(f)
        for line in f:
            c = line.rstrip("\n").split("\t")
            files[c[0]] = os.path.join(TESTDATA, "audio", c[1])
    with open(os.path.join(TESTDATA, "transcripts", "tiny.en_float32_b1.json")) as f:
        ref = json.load(f)["clips"]
    out = {}
    for cid in CLIPS:
        with open(files[cid], "rb") as f:
            out[cid] = (f.read(), ref[cid]["text"].strip())
    return out


def form(clip_id, audio, fields=()):
    """A multipart/form-data body with the clip as `file`; returns (content_type, bytes)."""
    b = uuid.uuid4().hex
    parts = []
    for k, v in list(fields) + [("response_format", "json")]:
        parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    parts.append(f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{clip_id}.wav"\r\n'
                 f"Content-Type: audio/wav\r\n\r\n".encode() + audio + b"\r\n")
    parts.append(f"--{b}--\r\n".encode())
    return f"multipart/form-data; boundary={b}", b"".join(parts)


# ---- the server -------------------------------------------------------------------------------

class Server:
    """`amanuensis serve` on a free port with `data_dir`; `kill()` is SIGKILL."""

    def __init__(self, binary, data_dir, extra=()):
        self.binary, self.data_dir, self.extra = binary, data_dir, list(extra)
        self.proc = None
        self.port = None
        self.stderr_lines = []

    def start(self):
        cmd = [self.binary, "serve", "--port", "0", "--model", "tiny.en", "--compute-type", "f32", "--beam-size", "1",
               "--data-dir", self.data_dir] + self.extra
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        got = threading.Event()

        def out():
            for line in self.proc.stdout:
                if "listening on " in line and not got.is_set():
                    self.port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
                    got.set()

        def err():
            for line in self.proc.stderr:
                self.stderr_lines.append(line.rstrip())

        threading.Thread(target=out, daemon=True).start()
        threading.Thread(target=err, daemon=True).start()
        if not got.wait(90):
            self.kill()
            raise Failure("the server printed no address within 90 s:\n" + self.tail())
        t0 = time.time()
        while time.time() - t0 < 120:
            try:
                if self.request("GET", "/health", timeout=5)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise Failure("the server was not ready within 120 s:\n" + self.tail())

    def tail(self, n=30):
        return "\n".join(self.stderr_lines[-n:])

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self):
        return self.proc.poll() is None

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def submit(self, clip_id, audio, timeout=60):
        """POST /v1/jobs; the job id if the server answered 202, else None."""
        ct, body = form(clip_id, audio)
        status, data = self.request("POST", "/v1/jobs", body, {"Content-Type": ct}, timeout=timeout)
        if status == 202:
            return json.loads(data)["id"]
        log(f"submit {clip_id}: {status} {data[:200]!r}")
        return None

    def job(self, jid):
        status, data = self.request("GET", f"/v1/jobs/{jid}")
        return json.loads(data) if status == 200 else None

    def spool(self):
        d = os.path.join(self.data_dir, "spool")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []


def raw_connect(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def request_head(port, ct, length, path="/v1/jobs"):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ct}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def abort(sock):
    """Closes with a TCP reset (SO_LINGER 0), as a client that crashed or lost its network."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- checks -----------------------------------------------------------------------------------

class Tally:
    def __init__(self, name):
        self.name = name
        self.injected = 0
        self.accepted = {}  # job id -> clip id
        self.completed = 0
        self.lost = []
        self.error = None
        self.skipped = None  # why the scenario did not run (then it neither passes nor fails)
        self.seconds = 0.0


class Skipped(Exception):
    """The scenario cannot run here (a missing tool, outside CI)."""


def wait_all(server, tally, clips):
    """Waits for every accepted job to finish; counts those done with their clip's text."""
    t0 = time.time()
    pending = dict(tally.accepted)
    while pending and time.time() - t0 < JOB_DEADLINE:
        for jid in list(pending):
            j = server.job(jid)
            if j is None:
                tally.lost.append(f"{jid}: gone (404)")
                del pending[jid]
            elif j["status"] == "done":
                status, data = server.request("GET", f"/v1/jobs/{jid}/result?format=text")
                text = data.decode().strip()
                want = clips[pending[jid]][1]
                if status == 200 and text == want:
                    tally.completed += 1
                else:
                    tally.lost.append(f"{jid} ({pending[jid]}): {status} text {text!r}, expected {want!r}")
                del pending[jid]
            elif j["status"] in ("failed", "cancelled"):
                tally.lost.append(f"{jid} ({pending[jid]}): {j['status']} {j.get('error')}")
                del pending[jid]
        time.sleep(0.2)
    for jid in pending:
        tally.lost.append(f"{jid} ({pending[jid]}): not finished after {JOB_DEADLINE:.0f} s")


def healthy(server):
    check(server.alive(), "the server died")
    t0 = time.time()
    status, _ = server.request("GET", "/health", timeout=10)
    check(status == 200 and time.time() - t0 < 5, f"/health answered {status} in {time.time() - t0:.1f} s")


# ---- scenarios: each takes (binary, tally, clips) and fills the tally --------------------------

def kill_during_uploads(binary, tally, clips):
    """Uploads paced over ~1 s each, six at a time; SIGKILL while some are mid-body and others
    have their 202; restart; every 202 must complete. Three rounds."""
    data = tempfile.mkdtemp(prefix="faults-upload-")
    rng = random.Random(13)
    server = Server(binary, data).start()
    for rnd in range(3):
        results, threads = {}, []

        def upload(i, cid, delay):
            time.sleep(delay)
            ct, body = form(cid, clips[cid][0])
            try:
                s = raw_connect(server.port, timeout=30)
                s.sendall(request_head(server.port, ct, len(body)))
                for k in range(0, len(body), 16384):
                    s.sendall(body[k:k + 16384])
                    time.sleep(0.05)
                resp = b""
                while b"\r\n\r\n" not in resp:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    resp += chunk
                head, _, rest = resp.partition(b"\r\n\r\n")
                if head.startswith(b"HTTP/1.1 202"):
                    length = int([h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0])
                    while len(rest) < length:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        rest += chunk
                    results[i] = (cid, json.loads(rest[:length])["id"])
                s.close()
            except (OSError, ValueError, IndexError):
                results[i] = (cid, None)

        for i in range(6):
            cid = CLIPS[(rnd * 6 + i) % len(CLIPS)]
            t = threading.Thread(target=upload, args=(i, cid, i * 0.25), daemon=True)
            t.start()
            threads.append(t)
        time.sleep(0.9 + rng.random() * 0.6)
        server.kill()
        tally.injected += 1
        for t in threads:
            t.join(30)
        for cid, jid in results.values():
            if jid:
                tally.accepted[jid] = cid
        log(f"uploads round {rnd}: {sum(1 for _, j in results.values() if j)} of 6 accepted before the kill")
        server = Server(binary, data).start()
    wait_all(server, tally, clips)
    healthy(server)
    server.stop()


def kill_during_jobs(binary, tally, clips):
    """Twelve jobs queued; SIGKILL whenever one is running (three times), restart on the same
    --data-dir; every job must resume and complete."""
    data = tempfile.mkdtemp(prefix="faults-jobs-")
    server = Server(binary, data).start()
    for i in range(12):
        cid = CLIPS[i % len(CLIPS)]
        jid = server.submit(cid, clips[cid][0])
        check(jid is not None, "a job was refused")
        tally.accepted[jid] = cid
    for _ in range(3):
        t0 = time.time()
        running = None
        while time.time() - t0 < 60 and running is None:
            for jid in tally.accepted:
                j = server.job(jid)
                if j and j["status"] == "running":
                    running = jid
                    break
            else:
                time.sleep(0.02)
        if running is None:
            break  # every job already finished
        time.sleep(random.Random(running).random() * 0.3)
        server.kill()
        tally.injected += 1
        log(f"killed with {running} running")
        server = Server(binary, data).start()
    wait_all(server, tally, clips)
    healthy(server)
    server.stop()


def vanishing_clients(binary, tally, clips):
    """Clients that go away mid-upload (a reset after part of the body, a close after the
    headers, a close mid-multipart-header): no job, no spool file, the server healthy and still
    taking jobs."""
    data = tempfile.mkdtemp(prefix="faults-vanish-")
    server = Server(binary, data).start()
    cid = CLIPS[0]
    ct, body = form(cid, clips[cid][0])
    for i in range(12):
        s = raw_connect(server.port)
        s.sendall(request_head(server.port, ct, len(body)))
        cut = [0, 40, len(body) // 3, len(body) - 10][i % 4]
        if cut:
            s.sendall(body[:cut])
        time.sleep(0.05)
        if i % 2:
            abort(s)
        else:
            s.close()
        tally.injected += 1
    time.sleep(1.0)
    healthy(server)
    status, listing = server.request("GET", "/v1/jobs")
    check(status == 200 and json.loads(listing)["data"] == [], f"jobs from vanished clients: {listing[:300]!r}")
    check(server.spool() == [], f"spool files left by vanished clients: {server.spool()}")
    for k in range(2):
        jid = server.submit(CLIPS[k + 1], clips[CLIPS[k + 1]][0])
        check(jid is not None, "a job was refused after the vanished clients")
        tally.accepted[jid] = CLIPS[k + 1]
    wait_all(server, tally, clips)
    check(server.spool() == [], f"spool files left after the jobs: {server.spool()}")
    server.stop()


def slow_clients(binary, tally, clips):
    """Trickling clients (a body at a few bytes a second, headers that never end) with
    --read-timeout-secs 3: /health and new jobs are answered meanwhile, and the slow ones are
    cut off (408 or closed) within the timeout plus a margin."""
    data = tempfile.mkdtemp(prefix="faults-slow-")
    timeout = 3.0
    server = Server(binary, data, ["--read-timeout-secs", str(timeout)]).start()
    cid = CLIPS[0]
    ct, body = form(cid, clips[cid][0])
    outcomes = {}

    def trickle(i, headers_only):
        t0 = time.time()
        s = raw_connect(server.port, timeout=timeout * 4)
        try:
            head = request_head(server.port, ct, len(body))
            if headers_only:
                s.sendall(head[:30])
                data_iter = (head[30:][k:k + 1] for k in range(len(head) - 30))
            else:
                s.sendall(head + body[:1000])
                data_iter = (body[k:k + 4] for k in range(1000, len(body), 4))
            s.setblocking(False)
            answer = b""
            for piece in data_iter:
                try:
                    s.sendall(piece)
                except (BlockingIOError, OSError):
                    break
                try:
                    chunk = s.recv(4096)
                    if chunk == b"":
                        break
                    answer += chunk
                    break
                except BlockingIOError:
                    pass
                if time.time() - t0 > timeout * 4:
                    break
                time.sleep(0.25)
            s.setblocking(True)
            s.settimeout(2)
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    answer += chunk
            except OSError:
                pass
            outcomes[i] = (time.time() - t0, answer.split(b"\r\n", 1)[0].decode(errors="replace"))
        finally:
            s.close()

    threads = [threading.Thread(target=trickle, args=(i, i % 2 == 1), daemon=True) for i in range(6)]
    for t in threads:
        t.start()
        tally.injected += 1
    time.sleep(0.5)
    # Meanwhile: /health is quick and jobs are taken and run.
    for k in range(2):
        healthy(server)
        jid = server.submit(CLIPS[k + 2], clips[CLIPS[k + 2]][0], timeout=10)
        check(jid is not None, "a job was refused while slow clients were connected")
        tally.accepted[jid] = CLIPS[k + 2]
    for t in threads:
        t.join(timeout * 6)
    for i, (secs, line) in sorted(outcomes.items()):
        kind = "headers" if i % 2 else "body"
        log(f"slow client {i} ({kind}): cut after {secs:.1f} s, answer {line!r}")
        check(secs < timeout + 4, f"slow client {i} ({kind}) was held {secs:.1f} s (read timeout {timeout} s)")
        if kind == "body":
            check(line.startswith("HTTP/1.1 408"), f"slow body client {i} got {line!r}, expected 408")
    check(len(outcomes) == len(threads), "a slow client thread did not finish")
    wait_all(server, tally, clips)
    healthy(server)
    check(server.spool() == [], f"spool files left: {server.spool()}")
    server.stop()


# ---- NATS: `serve --broker` and `amanuensis worker` processes ---------------------------------

def find_nats_server():
    """nats-server on PATH or in /usr/sbin (Debian's place, which a user's PATH may lack)."""
    for d in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin"]:
        p = os.path.join(d, "nats-server")
        if d and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nats:
    """`nats-server -js` on a free port with its own store folder; `stop()` kills it and removes
    the folder."""

    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="faults-nats-")
        self.port = free_port()
        self.proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t0 = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                check(self.proc.poll() is None, f"nats-server exited with {self.proc.returncode}")
                check(time.time() - t0 < 10, f"nats-server did not listen on {self.port} within 10 s")
                time.sleep(0.02)
        self.url = f"nats://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Worker:
    """`amanuensis worker --broker URL` (same model and options as the scenarios' server); its
    stderr is kept in `lines`. `kill()` is SIGKILL."""

    def __init__(self, binary, url, extra=()):
        cmd = [binary, "worker", "--broker", url, "--model", "tiny.en", "--compute-type", "f32", "--beam-size", "1",
               "--threads", "1"] + list(extra)
        env = dict(os.environ)
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        self.ready = threading.Event()

        def err():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                if "amanuensis worker: ready:" in line:
                    self.ready.set()

        threading.Thread(target=err, daemon=True).start()

    def wait_ready(self, secs=90):
        t0 = time.time()
        while not self.ready.wait(0.1):
            check(self.proc.poll() is None, f"the worker exited with {self.proc.returncode}:\n" + self.tail())
            check(time.time() - t0 < secs, f"the worker was not ready within {secs} s:\n" + self.tail())
        return self

    def tail(self, n=20):
        return "\n".join(self.lines[-n:])

    def events(self, what):
        """(job id, rest) for each `amanuensis worker: job ID <what>...` line."""
        out = []
        for l in list(self.lines):
            if l.startswith("amanuensis worker: job "):
                jid, _, rest = l[len("amanuensis worker: job "):].partition(" ")
                if rest.startswith(what):
                    out.append((jid, rest))
        return out

    def running(self):
        """The job this worker (--jobs 1) has started and not finished, else None."""
        last = None
        for l in list(self.lines):
            if l.startswith("amanuensis worker: job "):
                jid, _, rest = l[len("amanuensis worker: job "):].partition(" ")
                last = jid if rest.startswith("started") else (None if jid == last else last)
        return last

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def kill_nats_worker(binary, tally, clips):
    """`serve --broker` on a fresh nats-server -js, two workers (--jobs 1, --ack-wait-secs 3);
    twelve jobs; SIGKILL a worker whose log says it started a job it has not finished, restart it,
    three times. Every job must be done exactly once (one `done` line over all the workers' logs)
    with the right text, and each interrupted job must be delivered again (a later `started
    (attempt N)` line with a higher N)."""
    nats_bin = find_nats_server()
    if nats_bin is None:
        if os.environ.get("CI"):
            raise Failure("CI is set but nats-server is neither on PATH nor in /usr/sbin: install it (apt-get install nats-server)")
        raise Skipped("nats-server is neither on PATH nor in /usr/sbin (apt-get install nats-server)")
    ack_wait = 3
    # Above the kills + 1: a job interrupted by every kill must still not fail for too many attempts.
    opts = ["--jobs", "1", "--ack-wait-secs", str(ack_wait), "--max-attempts", "5"]
    data = tempfile.mkdtemp(prefix="faults-nats-serve-")
    nats, server, workers, gone = None, None, [], []
    try:
        nats = Nats(nats_bin)
        server = Server(binary, data, ["--broker", nats.url])
        workers = [Worker(binary, nats.url, opts), Worker(binary, nats.url, opts)]
        server.start()
        for w in workers:
            w.wait_ready()
        for i in range(12):
            cid = CLIPS[i % len(CLIPS)]
            jid = server.submit(cid, clips[cid][0])
            check(jid is not None, "a job was refused")
            tally.accepted[jid] = cid
        killed = []  # (job id, attempt it was killed in)
        rng = random.Random(7)
        for k in range(3):
            t0 = time.time()
            victim = None
            while victim is None and time.time() - t0 < 60:
                # The restarted worker first: the kill is repeated on a restarted worker.
                for slot in (0, 1):
                    jid = workers[slot].running()
                    if jid is not None:
                        victim = (slot, jid)
                        break
                else:
                    if all(server.job(j)["status"] == "done" for j in tally.accepted):
                        break
                    time.sleep(0.02)
            if victim is None:
                log(f"kill {k}: no worker was running a job (all done)")
                break
            slot, jid = victim
            time.sleep(rng.random() * 0.5)
            w = workers[slot]
            if w.running() != jid:
                continue  # it finished meanwhile; look again
            attempt = int([r for j, r in w.events("started") if j == jid][-1].split("attempt ")[1].rstrip(")"))
            w.kill()
            tally.injected += 1
            st = server.job(jid)["status"]
            log(f"kill {k}: worker {slot} killed running {jid} (attempt {attempt}, the job's status {st})")
            check(st == "running", f"{jid} was {st} when its worker was killed")
            killed.append((jid, attempt))
            gone.append(w)
            workers[slot] = Worker(binary, nats.url, opts).wait_ready()
        wait_all(server, tally, clips)
        every = gone + workers
        done = [j for w in every for j, _ in w.events("done in")]
        for jid in tally.accepted:
            check(done.count(jid) == 1, f"{jid} was done {done.count(jid)} time(s) by the workers")
        check(len(done) == len(tally.accepted), f"the workers did {len(done)} jobs, {len(tally.accepted)} were submitted")
        for jid, attempt in killed:
            later = [int(r.split("attempt ")[1].rstrip(")")) for w in every for j, r in w.events("started") if j == jid]
            check(max(later) > attempt, f"{jid} was not delivered again after the kill in attempt {attempt}: {later}")
            log(f"{jid}: killed in attempt {attempt}, started in attempts {sorted(later)}")
        check(tally.injected >= 1, "no kill landed on a running job")
        healthy(server)
    finally:
        for w in workers + gone:
            w.kill()
        if server is not None:
            server.stop()
        if nats is not None:
            nats.stop()
        shutil.rmtree(data, ignore_errors=True)


SCENARIOS = [
    ("kill -9 during uploads", kill_during_uploads),
    ("kill -9 during jobs", kill_during_jobs),
    ("clients vanish mid-upload", vanishing_clients),
    ("slow clients", slow_clients),
    ("kill -9 a NATS worker mid-job", kill_nats_worker),
]


def main():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(target, "debug", "amanuensis"), help="the amanuensis binary")
    ap.add_argument("--only", nargs="*", help="run only the scenarios whose function names are given")
    args = ap.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"faults: no amanuensis binary at {args.bin} (build it with cargo build -p amanuensis, or pass --bin)")
    clips = load_clips()
    tallies = []
    for name, fn in SCENARIOS:
        if args.only and fn.__name__ not in args.only:
            continue
        tally = Tally(name)
        log(f"== {name}")
        t0 = time.time()
        try:
            fn(args.bin, tally, clips)
        except Skipped as e:
            tally.skipped = str(e)
            log(f"skipped: {e}")
        except Exception as e:  # a failed check or an unexpected error fails the scenario
            tally.error = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        tally.seconds = time.time() - t0
        tallies.append(tally)
    rows = [("fault", "injected", "jobs accepted", "jobs completed", "jobs lost", "seconds", "checks")]
    for t in tallies:
        rows.append((t.name, str(t.injected), str(len(t.accepted)), str(t.completed), str(len(t.lost)), f"{t.seconds:.0f}",
                     "skipped" if t.skipped else "ok" if t.error is None else "FAILED"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for k, r in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    bad = False
    for t in tallies:
        if t.skipped:
            print(f"SKIPPED ({t.name}): {t.skipped}")
        for l in t.lost:
            print(f"LOST ({t.name}): {l}")
            bad = True
        if t.error:
            print(f"FAILED ({t.name}): {t.error}")
            bad = True
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
