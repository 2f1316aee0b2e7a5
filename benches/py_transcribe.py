#!/usr/bin/env python3
"""One Python script for both packages: transcribes FILE with `amanuensis` (our wheel) or
`faster_whisper` (the peer), the same calls either way, and reports like
../shared/peer/transcribe.py: the text on stdout, 'audio wall realtime' on stderr.
Model loading is outside the timed region. Used by benches/e2e.sh --python.

usage: python py_transcribe.py amanuensis|faster_whisper MODEL FILE [--compute-type int8]
       [--beam-size N] [--threads N] [--language CODE] [--batch-size N] [--vad-filter]
"""
import argparse
import importlib
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("package", choices=["amanuensis", "faster_whisper"])
ap.add_argument("model", help="a store name or model directory (amanuensis), a model directory (faster_whisper)")
ap.add_argument("file")
ap.add_argument("--compute-type", default="int8")
ap.add_argument("--beam-size", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--language", default=None)
ap.add_argument("--batch-size", type=int, default=1)
ap.add_argument("--vad-filter", action="store_true")
a = ap.parse_args()
pkg = importlib.import_module(a.package)
model = pkg.WhisperModel(a.model, device="cpu", compute_type=a.compute_type, cpu_threads=a.threads)
t0 = time.perf_counter()
if a.batch_size > 1:
    segs, info = pkg.BatchedInferencePipeline(model=model).transcribe(
        a.file, batch_size=a.batch_size, beam_size=a.beam_size, language=a.language)
else:
    segs, info = model.transcribe(a.file, beam_size=a.beam_size, language=a.language, vad_filter=a.vad_filter)
text = "".join(s.text for s in segs).strip()
wall = time.perf_counter() - t0
print(text, flush=True)
print(f"{a.file}: audio {info.duration:.2f} s, wall {wall:.2f} s, realtime {info.duration / wall:.1f}x", file=sys.stderr)
