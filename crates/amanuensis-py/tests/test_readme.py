"""faster-whisper's README examples, with only the import changed (and, as its README says
to, the model size and the CPU line chosen: tiny.en, device="cpu", compute_type="int8")."""

from conftest import clip_path

AUDIO = str(clip_path("librivox_0870"))


def test_readme_transcribe(capsys):
    from amanuensis import WhisperModel

    model_size = "tiny.en"
    # Run on CPU with INT8
    model = WhisperModel(model_size, device="cpu", compute_type="int8")

    segments, info = model.transcribe(AUDIO, beam_size=5)

    print("Detected language '%s' with probability %f" % (info.language, info.language_probability))

    for segment in segments:
        print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text))

    out = capsys.readouterr().out
    assert "Detected language 'en' with probability 1.000000" in out
    assert "[0.00s -> " in out
    assert "John Dashwood" in out


def test_readme_batched(capsys):
    from amanuensis import BatchedInferencePipeline, WhisperModel

    model = WhisperModel("tiny.en", device="cpu", compute_type="int8")
    batched_model = BatchedInferencePipeline(model=model)
    segments, info = batched_model.transcribe(AUDIO, batch_size=16)

    for segment in segments:
        print("[%.2fs -> %.2fs] %s" % (segment.start, segment.end, segment.text))

    out = capsys.readouterr().out
    assert "Dashwood" in out and out.startswith("[")


def test_readme_word_timestamps(capsys):
    from amanuensis import WhisperModel

    model = WhisperModel("tiny.en", device="cpu", compute_type="int8")
    segments, _ = model.transcribe(AUDIO, word_timestamps=True)

    for segment in segments:
        for word in segment.words:
            print("[%.2fs -> %.2fs] %s" % (word.start, word.end, word.word))

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 15
    assert lines[0].endswith(" And")


def test_readme_vad(capsys):
    from amanuensis import WhisperModel

    model = WhisperModel("tiny.en", device="cpu", compute_type="int8")
    segments, _ = model.transcribe(AUDIO, vad_filter=True)
    first = list(segments)
    segments, _ = model.transcribe(
        AUDIO,
        vad_filter=True,
        vad_parameters=dict(min_silence_duration_ms=500),
    )
    second = list(segments)
    assert first and second
    assert "Dashwood" in "".join(s.text for s in second)
