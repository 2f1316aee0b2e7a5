"""Transcription through the package: the same text as the CLI and as faster-whisper's
goldens on the test clips, the fields, the input kinds, the lazy generator."""

import dataclasses
import io
import json
import subprocess
import time

import numpy as np
import pytest

import amanuensis
from amanuensis import _native
from conftest import CLIPS, clip_path, golden


def cli_segments(cli, paths, compute_type, tmp_path):
    """The CLI's verbose_json segments of each file (one process, one model load)."""
    subprocess.run(
        [cli, "transcribe", "--model", "tiny.en", "--compute-type", compute_type, "--output-format", "verbose_json",
         "--output-dir", str(tmp_path), *map(str, paths)],
        check=True, capture_output=True, text=True,
    )
    return [json.loads((tmp_path / f"{p.stem}.verbose.json").read_text())["segments"] for p in paths]


@pytest.mark.parametrize("compute_type,fixture", [("int8", "model"), ("float32", "model_f32")])
def test_same_as_cli_and_goldens(request, cli, compute_type, fixture, tmp_path):
    model = request.getfixturevalue(fixture)
    gold = golden(compute_type)
    cli_all = cli_segments(cli, [clip_path(n) for n in CLIPS], "f32" if compute_type == "float32" else "int8", tmp_path)
    for name, theirs in zip(CLIPS, cli_all):
        segments, info = model.transcribe(str(clip_path(name)))
        segments = list(segments)
        assert [s.text for s in segments] == [s["text"] for s in theirs], name
        assert [s.tokens for s in segments] == [s["tokens"] for s in theirs], name
        assert [(s.start, s.end) for s in segments] == [(s["start"], s["end"]) for s in theirs], name
        if compute_type == "float32":
            # f32 reproduces faster-whisper's tokens on these clips.
            assert [s.tokens for s in segments] == [s["tokens"] for s in gold[name]["segments"]], name
        assert "".join(s.text for s in segments).strip() == gold[name]["text"] or compute_type == "int8", name


def test_segment_and_info_fields(model):
    segments, info = model.transcribe(str(clip_path("librivox_0870")), word_timestamps=True)
    assert [f.name for f in dataclasses.fields(amanuensis.Segment)] == [
        "id", "seek", "start", "end", "text", "tokens", "avg_logprob", "compression_ratio",
        "no_speech_prob", "words", "temperature"]
    assert [f.name for f in dataclasses.fields(amanuensis.Word)] == ["start", "end", "word", "probability"]
    assert [f.name for f in dataclasses.fields(amanuensis.TranscriptionInfo)] == [
        "language", "language_probability", "duration", "duration_after_vad", "all_language_probs",
        "transcription_options", "vad_options"]
    assert isinstance(info, amanuensis.TranscriptionInfo)
    assert info.language == "en" and info.language_probability == 1.0
    assert info.duration == pytest.approx(7.10, abs=0.01) and info.duration_after_vad == info.duration
    assert info.transcription_options.beam_size == 5 and info.transcription_options.temperatures == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert info.vad_options is None
    segs = list(segments)
    assert [s.id for s in segs] == list(range(1, len(segs) + 1))
    for s in segs:
        assert isinstance(s, amanuensis.Segment)
        assert isinstance(s.id, int) and isinstance(s.seek, int) and isinstance(s.tokens, list)
        assert 0.0 <= s.start < s.end <= info.duration + 0.5
        assert s.avg_logprob < 0 and s.compression_ratio > 0 and 0 <= s.no_speech_prob <= 1
        assert s.temperature == 0.0
        assert s.words and all(isinstance(w, amanuensis.Word) for w in s.words)
        for w in s.words:
            assert s.start - 0.01 <= w.start <= w.end <= s.end + 0.01 and 0 < w.probability <= 1
        assert "".join(w.word for w in s.words) == s.text
    assert dataclasses.asdict(segs[0])["words"][0]["word"] == segs[0].words[0].word


def test_numpy_and_file_object_inputs(model):
    path = clip_path("librivox_0880")
    ref = [s.text for s in model.transcribe(str(path))[0]]
    audio = amanuensis.decode_audio(str(path))
    assert audio.dtype == np.float32 and audio.ndim == 1 and audio.shape[0] == 47840
    assert audio.flags.writeable
    assert [s.text for s in model.transcribe(audio)[0]] == ref
    with open(path, "rb") as f:
        assert [s.text for s in model.transcribe(f)[0]] == ref
    with open(path, "rb") as f:
        assert np.array_equal(amanuensis.decode_audio(io.BytesIO(f.read())), audio)
    # float64 arrays are converted, as faster-whisper's would be by CTranslate2.
    assert [s.text for s in model.transcribe(audio.astype(np.float64))[0]] == ref


def long_audio():
    """About 75 s: three windows at least."""
    parts = [amanuensis.decode_audio(str(clip_path(n))) for n in CLIPS]
    gap = np.zeros(16000, dtype=np.float32)
    return np.concatenate([np.concatenate([p, gap]) for p in parts] * 3)


def test_generator_is_lazy(model):
    audio = long_audio()
    assert audio.shape[0] / 16000 > 60
    t0 = time.monotonic()
    segments, info = model.transcribe(audio, beam_size=1)
    first = next(segments)
    t_first = time.monotonic() - t0
    # The transcription is still running when the first segment is handed out.
    assert _native.active_transcriptions() == 1
    assert first.end < 30.0
    rest = list(segments)
    t_all = time.monotonic() - t0
    assert rest and rest[-1].end > 60.0
    assert t_first < t_all
    assert _native.active_transcriptions() == 0


def test_abandoned_generator_stops(model):
    segments, _ = model.transcribe(long_audio(), beam_size=1)
    next(segments)
    del segments
    deadline = time.monotonic() + 30
    while _native.active_transcriptions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _native.active_transcriptions() == 0


def test_batched_pipeline(model):
    path = str(clip_path("librivox_0870"))
    batched = amanuensis.BatchedInferencePipeline(model)
    segments, info = batched.transcribe(path, batch_size=4, vad_filter=False, without_timestamps=False)
    text = "".join(s.text for s in segments).strip()
    seq = "".join(s.text for s in model.transcribe(path)[0]).strip()
    assert text == seq
    segments, info = batched.transcribe(long_audio(), batch_size=4)
    segs = list(segments)
    assert info.vad_options.max_speech_duration_s == 30 and info.vad_options.min_silence_duration_ms == 160
    assert info.duration_after_vad < info.duration
    assert len(segs) >= 3 and all(a.start <= b.start for a, b in zip(segs, segs[1:]))


def test_options_reach_the_engine(model):
    path = str(clip_path("librivox_0870"))
    segs = list(model.transcribe(path, without_timestamps=True)[0])
    assert len(segs) == 1
    segs = list(model.transcribe(path, prefix="And Mister")[0])
    assert segs[0].text.startswith(" And Mister")
    segs = list(model.transcribe(path, clip_timestamps=[2.0, 5.0])[0])
    assert segs and segs[0].start >= 2.0 and segs[-1].end <= 5.0 + 1e-6
    segs = list(model.transcribe(path, clip_timestamps="2,5")[0])
    assert segs and segs[-1].end <= 5.0 + 1e-6


def test_detect_language(model):
    audio = amanuensis.decode_audio(str(clip_path("librivox_0870")))
    lang, prob, probs = model.detect_language(audio)
    assert (lang, prob) == ("en", 1.0) and probs == [("en", 1.0)]
    assert model.supported_languages == ["en"]
