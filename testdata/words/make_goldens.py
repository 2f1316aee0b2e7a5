"""Writes the word-timestamp goldens of testdata/words/ with faster-whisper 1.2.1.

usage: python make_goldens.py TESTDATA_DIR MODELS_DIR [--vad-only]

TESTDATA_DIR is the repository's testdata/ folder (clips are read from TESTDATA_DIR/audio/ as
listed in audio/clips.tsv, goldens written to TESTDATA_DIR/words/). MODELS_DIR holds the
CTranslate2 models `tiny.en` and `base` (faster-whisper's layout).

For every model, compute type (float32, int8) and mode, every clip is transcribed with
`word_timestamps=True`, greedy (beam_size=1):
- `sequential`: WhisperModel.transcribe (default temperatures, no VAD);
- `batched`: BatchedInferencePipeline.transcribe(vad_filter=False, batch_size=8,
  without_timestamps=False) (every clip is shorter than 30 s, so it is one window: the whole
  clip; timestamps kept, as amanuensis's batched pipeline does);
- `batched_no_timestamps`: the same with faster-whisper's default without_timestamps=True.
`vad_goldens.json`: tiny.en float32 greedy on the synthetic `speech_gap_speech` signal of
testdata/vad (librivox_0880 + 20 s and 300 samples of zeros + arctic_a0007), with the VAD:
`sequential_vad` = WhisperModel.transcribe(vad_filter=True), `batched_vad` =
BatchedInferencePipeline.transcribe(batch_size=8, without_timestamps=False) (its VAD is on by
default); word times mapped back to the original timeline by restore_speech_timestamps.
`--vad-only` writes only that file.

Each call of CTranslate2's Whisper.align made by faster-whisper is recorded too (`align`: the
text tokens, num_frames, the first time index of each row of the DTW path and the text
token probabilities), so the forced pass
can be checked on its own.
"""

import json
import os
import sys

import ctranslate2
import numpy as np

import faster_whisper
from faster_whisper import BatchedInferencePipeline, WhisperModel

MODELS = ["tiny.en", "base"]
COMPUTE_TYPES = ["float32", "int8"]


def clips(testdata):
    out = []
    with open(os.path.join(testdata, "audio", "clips.tsv")) as f:
        next(f)
        for line in f:
            cid, path = line.split("\t")[:2]
            out.append((cid, path))
    return out


class Recorder:
    """Wraps the CTranslate2 model so every align call is recorded."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def align(self, features, start_sequence, text_tokens, num_frames, **kw):
        results = self.model.align(features, start_sequence, text_tokens, num_frames, **kw)
        for tokens, frames, r in zip(text_tokens, num_frames if isinstance(num_frames, list) else [num_frames] * len(text_tokens), results):
            self.calls.append(
                {
                    "start_sequence": list(start_sequence),
                    "text_tokens": list(tokens),
                    "num_frames": int(frames),
                    # The DTW path reduced to what faster-whisper uses: for each row (the text
                    # tokens, then <|endoftext|>), the first time index the path enters it.
                    "jumps": jumps(r.alignments),
                    "text_token_probs": [float(p) for p in r.text_token_probs],
                }
            )
        return results


def jumps(path):
    out = []
    previous = None
    for text_index, time_index in path:
        if text_index != previous:
            out.append(int(time_index))
            previous = text_index
    return out


def segment_json(s):
    return {
        "start": s.start,
        "end": s.end,
        "text": s.text,
        "tokens": list(s.tokens),
        "words": [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for w in (s.words or [])
        ],
    }


def vad_goldens(testdata, models_dir):
    from faster_whisper.audio import decode_audio

    def clip(rel):
        return decode_audio(os.path.join(testdata, "audio", rel), sampling_rate=16000)

    audio = np.concatenate(
        [clip("human/librivox_0880.wav"), np.zeros(20 * 16000 + 300, np.float32), clip("human/arctic_a0007.wav")]
    )
    model = WhisperModel(os.path.join(models_dir, "tiny.en"), device="cpu", compute_type="float32", cpu_threads=2)
    out = {
        "generator": "testdata/words/make_goldens.py",
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "signal": "speech_gap_speech: librivox_0880 + (20 s + 300) zeros + arctic_a0007",
        "runs": [],
    }
    for mode in ["sequential_vad", "batched_vad"]:
        if mode == "sequential_vad":
            segs, _ = model.transcribe(audio, beam_size=1, word_timestamps=True, vad_filter=True)
        else:
            segs, _ = BatchedInferencePipeline(model=model).transcribe(
                audio, beam_size=1, word_timestamps=True, batch_size=8, without_timestamps=False
            )
        segs = [segment_json(s) for s in segs]
        print(mode, " ".join("%s[%.2f-%.2f]" % (w["word"], w["start"], w["end"]) for s in segs for w in s["words"]), flush=True)
        out["runs"].append({"model": "tiny.en", "compute_type": "float32", "mode": mode, "segments": segs})
    with open(os.path.join(testdata, "words", "vad_goldens.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def main():
    testdata, models_dir = sys.argv[1], sys.argv[2]
    vad_goldens(testdata, models_dir)
    if "--vad-only" in sys.argv[3:]:
        return
    out = {
        "generator": "testdata/words/make_goldens.py",
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "numpy": np.__version__,
        "options": {
            "sequential": "WhisperModel(MODEL, device='cpu', compute_type=CT, cpu_threads=2).transcribe(wav, beam_size=1, word_timestamps=True)",
            "batched": "BatchedInferencePipeline(model).transcribe(wav, beam_size=1, word_timestamps=True, vad_filter=False, batch_size=8, without_timestamps=False)",
            "batched_no_timestamps": "BatchedInferencePipeline(model).transcribe(wav, beam_size=1, word_timestamps=True, vad_filter=False, batch_size=8)",
        },
        "runs": [],
    }
    for name in MODELS:
        for ct in COMPUTE_TYPES:
            model = WhisperModel(os.path.join(models_dir, name), device="cpu", compute_type=ct, cpu_threads=2)
            recorder = Recorder(model.model)
            model.model = recorder
            for mode in ["sequential", "batched", "batched_no_timestamps"]:
                run = {"model": name, "compute_type": ct, "mode": mode, "clips": []}
                for cid, path in clips(testdata):
                    recorder.calls = []
                    wav = os.path.join(testdata, "audio", path)
                    if mode == "sequential":
                        segs, info = model.transcribe(wav, beam_size=1, word_timestamps=True)
                    else:
                        segs, info = BatchedInferencePipeline(model=model).transcribe(
                            wav,
                            beam_size=1,
                            word_timestamps=True,
                            vad_filter=False,
                            batch_size=8,
                            without_timestamps=(mode == "batched_no_timestamps"),
                        )
                    segs = [segment_json(s) for s in segs]
                    run["clips"].append(
                        {"id": cid, "audio": "audio/" + path, "language": info.language, "segments": segs, "align": recorder.calls}
                    )
                    print(name, ct, mode, cid, " ".join(w["word"] for s in segs for w in s["words"]), flush=True)
                out["runs"].append(run)
    with open(os.path.join(testdata, "words", "goldens.json"), "w") as f:
        json.dump(out, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
