"""Writes the VAD goldens of testdata/vad/ with faster-whisper 1.2.1 (Silero VAD v6 on ONNX Runtime).

usage: python make_goldens.py TESTDATA_DIR [LONG_WAV]

TESTDATA_DIR is the repository's testdata/ folder (clips are read from TESTDATA_DIR/audio/,
goldens written to TESTDATA_DIR/vad/). LONG_WAV (optional) is the 10-minute long.wav of the
shared folder; its goldens are written too, the audio itself is not copied.

Everything is computed through faster_whisper.vad: the probabilities by the cached model that
get_speech_timestamps uses (same padding, same call), the timestamps by get_speech_timestamps,
the timeline map by SpeechTimestampsMap and the 30 s windows by collect_chunks.
"""

import json
import os
import random
import sys

import numpy as np

import faster_whisper
from faster_whisper.audio import decode_audio
from faster_whisper.vad import (
    SpeechTimestampsMap,
    VadOptions,
    collect_chunks,
    get_speech_timestamps,
    get_vad_model,
)

SR = 16000
WINDOW = 512

OPTIONS = {
    "default": VadOptions(),
    "custom": VadOptions(
        threshold=0.6,
        neg_threshold=0.3,
        min_speech_duration_ms=250,
        max_speech_duration_s=4.0,
        min_silence_duration_ms=300,
        speech_pad_ms=100,
    ),
    # What BatchedInferencePipeline.transcribe uses when vad_parameters is None.
    "batched": VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160),
}


def lcg_noise(n, amplitude, seed):
    """Deterministic low noise, reproduced bit for bit by the Rust tests: a 64-bit LCG
    (Knuth's MMIX constants), integer samples in [-amplitude, amplitude], divided by 32768."""
    out = np.empty(n, dtype=np.float32)
    state = seed
    mask = (1 << 64) - 1
    span = 2 * amplitude + 1
    for i in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & mask
        out[i] = np.float32(((state >> 33) % span) - amplitude) / np.float32(32768.0)
    return out


def probabilities(audio):
    """The probabilities get_speech_timestamps computes, the same way (it pads, then the model
    zeroes the last 64 samples of the last window in place)."""
    padded = np.pad(audio, (0, WINDOW - audio.shape[0] % WINDOW))
    return np.asarray(get_vad_model()(padded), dtype=np.float32).reshape(-1)


def options_json(o):
    return {
        "threshold": o.threshold,
        "neg_threshold": o.neg_threshold,
        "min_speech_duration_ms": o.min_speech_duration_ms,
        "max_speech_duration_s": None if o.max_speech_duration_s == float("inf") else o.max_speech_duration_s,
        "min_silence_duration_ms": o.min_silence_duration_ms,
        "speech_pad_ms": o.speech_pad_ms,
    }


def entry(name, audio, out_dir, source, store_probs=True):
    probs = probabilities(audio)
    e = {"id": name, "source": source, "n_samples": int(audio.shape[0]), "n_windows": int(probs.shape[0])}
    if store_probs:
        np.save(os.path.join(out_dir, "probs", name + ".npy"), probs)
        e["probs"] = "probs/" + name + ".npy"
    e["timestamps"] = {
        k: [[int(s["start"]), int(s["end"])] for s in get_speech_timestamps(audio, o)] for k, o in OPTIONS.items()
    }
    return e


def map_vectors(chunks, seed):
    """get_original_time on random and boundary times, with and without is_end / chunk_index."""
    m = SpeechTimestampsMap(chunks, SR)
    rng = random.Random(seed)
    total = sum(c["end"] - c["start"] for c in chunks) / SR
    times = [round(rng.uniform(0, total), 2) for _ in range(40)]
    times += [e / SR for e in m.chunk_end_sample] + [0.0, total]
    out = []
    for t in times:
        out.append({"time": t, "is_end": False, "original": m.get_original_time(t)})
        out.append({"time": t, "is_end": True, "original": m.get_original_time(t, is_end=True)})
        out.append({"time": t, "chunk_index": m.get_chunk_index(t), "original": m.get_original_time(t, m.get_chunk_index(t))})
    return {"chunks": [[c["start"], c["end"]] for c in chunks], "cases": out}


def window_vectors(audio, chunks, max_s):
    audio_chunks, meta = collect_chunks(audio, [dict(c) for c in chunks], max_duration=max_s)
    return {
        "max_duration_s": max_s,
        "chunks": [[c["start"], c["end"]] for c in chunks],
        "windows": [
            {
                "offset_s": m["offset"],
                "duration_s": m["duration"],
                "n_samples": int(a.shape[0]),
                "segments": [[s["start"], s["end"]] for s in m["segments"]],
            }
            for a, m in zip(audio_chunks, meta)
        ],
    }


def main():
    testdata = sys.argv[1]
    long_wav = sys.argv[2] if len(sys.argv) > 2 else None
    out_dir = os.path.join(testdata, "vad")
    os.makedirs(os.path.join(out_dir, "probs"), exist_ok=True)

    clips = []
    with open(os.path.join(testdata, "audio", "clips.tsv")) as f:
        next(f)
        for line in f:
            cid, path = line.split("\t")[:2]
            clips.append((cid, path))

    files = []
    audio_of = {}
    for cid, path in clips:
        audio = decode_audio(os.path.join(testdata, "audio", path), sampling_rate=SR)
        audio_of[cid] = audio
        files.append(entry(cid, audio, out_dir, "audio/" + path))
        print(cid, files[-1]["timestamps"]["default"], flush=True)

    synthetic = []
    n60 = 60 * SR
    synthetic.append(entry("silence_60s", np.zeros(n60, np.float32), out_dir, "60 s of zeros"))
    synthetic.append(
        entry("noise_60s", lcg_noise(n60, 64, 12345), out_dir, "60 s of LCG noise, amplitude 64/32768, seed 12345")
    )
    gap = np.concatenate([audio_of["librivox_0880"], np.zeros(20 * SR + 300, np.float32), audio_of["arctic_a0007"]])
    synthetic.append(entry("speech_gap_speech", gap, out_dir, "librivox_0880 + (20 s + 300) zeros + arctic_a0007"))
    for s in synthetic:
        print(s["id"], s["timestamps"]["default"], flush=True)

    goldens = {
        "generator": "testdata/vad/make_goldens.py",
        "faster_whisper": faster_whisper.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "numpy": np.__version__,
        "options": {k: options_json(o) for k, o in OPTIONS.items()},
        "files": files,
        "synthetic": synthetic,
    }

    long_entry = None
    if long_wav:
        audio = decode_audio(long_wav, sampling_rate=SR)
        long_entry = entry("long", audio, out_dir, "shared/audio/long/long.wav (not in the repository)")
        goldens["long"] = long_entry
        chunks = [{"start": s, "end": e} for s, e in long_entry["timestamps"]["batched"]]
        goldens["long_windows"] = window_vectors(audio, chunks, 30)
        chunks_custom = [{"start": s, "end": e} for s, e in long_entry["timestamps"]["custom"]]
        goldens["long_map"] = map_vectors(chunks_custom, 1)
        print("long", len(chunks), "batched chunks,", len(goldens["long_windows"]["windows"]), "windows", flush=True)

    gap_chunks = [{"start": s, "end": e} for s, e in synthetic[2]["timestamps"]["custom"]]
    goldens["gap_map"] = map_vectors(gap_chunks, 2)
    goldens["gap_windows"] = window_vectors(gap, gap_chunks, 3)

    with open(os.path.join(out_dir, "goldens.json"), "w") as f:
        json.dump(goldens, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
