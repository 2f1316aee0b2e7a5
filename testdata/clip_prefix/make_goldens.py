"""Writes testdata/clip_prefix/goldens.json: faster-whisper 1.2.1's transcripts with
`clip_timestamps` and `prefix` (and their interplay with hotwords, initial_prompt,
without_timestamps and language detection), float32, temperature 0 (no fallback, so every
result is deterministic).

usage: python make_goldens.py TESTDATA_DIR MODELS_DIR

TESTDATA_DIR is the repository's testdata/ folder (audio read from TESTDATA_DIR/audio/, goldens
written to TESTDATA_DIR/clip_prefix/goldens.json); MODELS_DIR holds the CTranslate2 models
`tiny.en` and `base` (the peer's: ~/.cache/amanuensis-peer/models).

Each case's audio is the concatenation of the listed clips, each decoded with faster-whisper's
`decode_audio` (the clips are 16 kHz mono 16-bit WAVs, so this is exact); the tests rebuild it
the same way. Everything else is `WhisperModel.transcribe` with the case's options.
"""

import json
import os
import sys

import numpy as np

import ctranslate2
import faster_whisper
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

LONG = ["tts/s11.wav", "tts/s08.wav", "tts/s03.wav"]  # 42.5 s: windows inside one clip

CASES = [
    # clip_timestamps: pairs, an odd count (the last clip runs to the end), several windows in
    # one clip, a clip end that cuts a window short, a clip past the end of the audio.
    ("clip_pair_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, clip_timestamps="2.5,9")),
    ("clip_pair_beam", "tiny.en", ["tts/s11.wav"], dict(beam_size=5, clip_timestamps="2.5,9")),
    ("clip_odd_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, clip_timestamps="1,5.5,7")),
    ("clip_odd_beam", "tiny.en", ["tts/s11.wav"], dict(beam_size=5, clip_timestamps="1,5.5,7")),
    ("clip_list_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, clip_timestamps=[0.5, 3.25, 3.25, 8.0, 12.0, 30.0])),
    ("clip_long_greedy", "tiny.en", LONG, dict(beam_size=1, clip_timestamps="3,40.2")),
    ("clip_long_beam", "tiny.en", LONG, dict(beam_size=5, clip_timestamps="3,40.2")),
    ("clip_long_tail_greedy", "tiny.en", LONG, dict(beam_size=1, clip_timestamps="0,4,20")),
    ("clip_past_end_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, clip_timestamps="2,6,25,30")),
    # prefix: forced at the start of the window at seek 0 only, with and without timestamps.
    ("prefix_greedy", "tiny.en", ["human/librivox_0880.wav"], dict(beam_size=1, prefix="So I said")),
    ("prefix_beam", "tiny.en", ["human/librivox_0880.wav"], dict(beam_size=5, prefix="So I said")),
    ("prefix_no_timestamps_greedy", "tiny.en", ["human/librivox_0880.wav"], dict(beam_size=1, prefix="So I said", without_timestamps=True)),
    ("prefix_no_timestamps_beam", "tiny.en", ["human/librivox_0880.wav"], dict(beam_size=5, prefix="So I said", without_timestamps=True)),
    ("prefix_midsentence_greedy", "tiny.en", ["tts/s03.wav"], dict(beam_size=1, prefix="The")),
    ("prefix_midsentence_beam", "tiny.en", ["tts/s03.wav"], dict(beam_size=5, prefix="The")),
    ("prefix_initial_prompt_beam", "tiny.en", ["human/librivox_0870.wav"], dict(beam_size=5, prefix="Well,", initial_prompt="Sense and Sensibility, by Jane Austen.")),
    # prefix with clips: applied when the first clip starts at 0, not otherwise.
    ("prefix_clip_at_zero_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, prefix="Scientists say", clip_timestamps="0,9")),
    ("prefix_clip_later_greedy", "tiny.en", ["tts/s11.wav"], dict(beam_size=1, prefix="Hello", clip_timestamps="2,9")),
    # prefix disables hotwords in its window only; later windows get the hotwords.
    ("prefix_hotwords_long_greedy", "tiny.en", LONG, dict(beam_size=1, prefix="Scientists", hotwords="oaks volunteers")),
    ("prefix_hotwords_long_beam", "tiny.en", LONG, dict(beam_size=5, prefix="Scientists", hotwords="oaks volunteers")),
    # multilingual: language detection on the first clip's start, prefix after the language token.
    ("base_clip_detect_beam", "base", LONG, dict(beam_size=5, clip_timestamps="5.5,25")),
    ("base_prefix_beam", "base", ["human/librivox_0880.wav"], dict(beam_size=5, prefix="So I said")),
    ("base_prefix_clip_greedy", "base", LONG, dict(beam_size=1, prefix="Scientists", clip_timestamps="0,12,30")),
]


def main():
    testdata, models_dir = sys.argv[1], sys.argv[2]
    models = {}
    out = {
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "command": "~/.cache/amanuensis-peer/venv/bin/python testdata/clip_prefix/make_goldens.py testdata ~/.cache/amanuensis-peer/models",
        "settings": "compute_type=float32, cpu_threads=2, temperature=0.0, other options faster-whisper's defaults",
        "cases": [],
    }
    for name, model_name, clips, options in CASES:
        if model_name not in models:
            models[model_name] = WhisperModel(os.path.join(models_dir, model_name), device="cpu", compute_type="float32", cpu_threads=2)
        audio = np.concatenate([decode_audio(os.path.join(testdata, "audio", c)) for c in clips])
        segments, info = models[model_name].transcribe(audio, temperature=0.0, **options)
        segments = [
            {"seek": s.seek, "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens)}
            for s in segments
        ]
        out["cases"].append({
            "name": name,
            "model": model_name,
            "audio": clips,
            "options": options,
            "language": info.language,
            "segments": segments,
        })
        print(name, info.language, "".join(s["text"] for s in segments), file=sys.stderr)
    with open(os.path.join(testdata, "clip_prefix", "goldens.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
