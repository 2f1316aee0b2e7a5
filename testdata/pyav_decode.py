#!/usr/bin/env python3
"""Decodes audio files the way faster-whisper 1.2.1's decode_audio does (PyAV: resample to
16 kHz mono s16) and writes each result as a 16-bit mono 16 kHz WAV.

usage: python pyav_decode.py OUT_DIR FILE...      (needs: pip install av)
"""
import os
import sys
import wave

import av


def decode(path):
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=16000)
    chunks = []
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        for frame in container.decode(audio=0):
            frame.pts = None
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().tobytes())
    for out in resampler.resample(None):  # flush
        chunks.append(out.to_ndarray().tobytes())
    return b"".join(chunks)


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    os.makedirs(out_dir, exist_ok=True)
    for path in files:
        pcm = decode(path)
        name = os.path.splitext(os.path.basename(path))[0] + "." + path.rsplit(".", 1)[1] + ".wav"
        with wave.open(os.path.join(out_dir, name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(pcm)
        print(name, len(pcm) // 2, "samples")


if __name__ == "__main__":
    main()
