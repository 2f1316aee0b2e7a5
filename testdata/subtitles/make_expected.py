"""Writes the expected subtitle files of testdata/subtitles/expected/ with openai-whisper's writers.

usage: python make_expected.py [--transcribe AMANUENSIS_BIN MODEL_DIR]

Run from anywhere with a Python that has `openai-whisper` installed without its dependencies
(`pip install --no-deps openai-whisper`): only `whisper/utils.py` is loaded, straight from the
installed files with importlib, so neither torch nor the rest of the package is imported.

Inputs are the transcripts `*.verbose.json` next to this script (amanuensis's verbose_json:
segments with `start`, `end`, `text` and, with word timestamps, `words` of `word`, `start`,
`end`). For each one and each option set of CASES (openai-whisper's `--max_line_width`,
`--max_line_count`, `--max_words_per_line`, `--highlight_words`), `WriteSRT` and `WriteVTT`
write `expected/NAME.CASE.srt|vtt`; `WriteTSV` writes `expected/NAME.tsv` (it has no options).
A transcript without words is written with the default options only (openai-whisper's segment
path). `expected/cases.json` lists what was written and with which options and versions.

One setting differs from openai-whisper's command line: WriteVTT is told to always write the
hours (`always_include_hours = True`), because amanuensis's vtt always has them (as OpenAI's API
does); everything else is openai-whisper's code unchanged.

--transcribe remakes `mix.verbose.json` first: the clips of MIX (with the silences after each)
are concatenated into one 16 kHz WAV in a temporary directory, and amanuensis transcribes it
with tiny.en, f32, greedy, word timestamps.
"""

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import wave

HERE = os.path.dirname(os.path.abspath(__file__))
AUDIO = os.path.join(HERE, "..", "audio")

# (clip under testdata/audio, seconds of silence after it)
MIX = [("tts/s11.wav", 4.0), ("tts/s08.wav", 1.0), ("human/librivox_0870.wav", 0.0), ("tts/s06.wav", 0.0)]

CASES = [
    ("default", {}),
    ("width42", {"max_line_width": 42}),
    ("width42_count2", {"max_line_width": 42, "max_line_count": 2}),
    ("width16_count1", {"max_line_width": 16, "max_line_count": 1}),
    ("words5", {"max_words_per_line": 5}),
    ("words1", {"max_words_per_line": 1}),
    ("width30_words4", {"max_line_width": 30, "max_words_per_line": 4}),
    ("highlight", {"highlight_words": True}),
    ("highlight_width42_count2", {"highlight_words": True, "max_line_width": 42, "max_line_count": 2}),
    ("highlight_words3", {"highlight_words": True, "max_words_per_line": 3}),
]


def load_utils():
    spec = importlib.util.find_spec("whisper")  # locates the package without importing it
    path = os.path.join(spec.submodule_search_locations[0], "utils.py")
    module_spec = importlib.util.spec_from_file_location("openai_whisper_utils", path)
    utils = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(utils)
    assert "torch" not in sys.modules, "utils.py must load without torch"
    return utils


def transcribe_mix(binary, model):
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "mix.wav")
        frames = b""
        for clip, gap in MIX:
            with wave.open(os.path.join(AUDIO, clip)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2), clip
                frames += w.readframes(w.getnframes())
            frames += b"\0\0" * int(16000 * gap)
        with wave.open(wav, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(frames)
        cmd = [binary, "transcribe", wav, "--model", model, "--compute-type", "f32", "--beam-size", "1",
               "--word-timestamps", "--output-format", "verbose_json"]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout
    with open(os.path.join(HERE, "mix.verbose.json"), "wb") as f:
        f.write(out)


def result_of(transcript):
    """openai-whisper's result dict: what its writers read of a transcript."""
    segments = []
    for s in transcript["segments"]:
        seg = {"start": s["start"], "end": s["end"], "text": s["text"]}
        if "words" in s:
            seg["words"] = [{"word": w["word"], "start": w["start"], "end": w["end"]} for w in s["words"]]
        segments.append(seg)
    return {"text": transcript["text"], "segments": segments, "language": transcript["language"]}


def main():
    args = sys.argv[1:]
    if args[:1] == ["--transcribe"]:
        transcribe_mix(args[1], args[2])
    utils = load_utils()
    out_dir = os.path.join(HERE, "expected")
    os.makedirs(out_dir, exist_ok=True)
    srt, vtt, tsv = utils.WriteSRT(out_dir), utils.WriteVTT(out_dir), utils.WriteTSV(out_dir)
    vtt.always_include_hours = True
    written = []
    for name in sorted(f[: -len(".verbose.json")] for f in os.listdir(HERE) if f.endswith(".verbose.json")):
        with open(os.path.join(HERE, name + ".verbose.json"), encoding="utf-8") as f:
            result = result_of(json.load(f))
        has_words = any("words" in s for s in result["segments"])
        for case, options in CASES if has_words else CASES[:1]:
            for writer, ext in [(srt, "srt"), (vtt, "vtt")]:
                with open(os.path.join(out_dir, f"{name}.{case}.{ext}"), "w", encoding="utf-8", newline="") as f:
                    writer.write_result(result, file=f, **options)
            written.append({"transcript": name, "case": case, "options": options})
        with open(os.path.join(out_dir, f"{name}.tsv"), "w", encoding="utf-8", newline="") as f:
            tsv.write_result(result, file=f)
    manifest = {
        "generator": "testdata/subtitles/make_expected.py",
        "openai_whisper": importlib.metadata.version("openai-whisper"),
        "python": sys.version.split()[0],
        "vtt_always_include_hours": True,
        "cases": written,
    }
    with open(os.path.join(out_dir, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
