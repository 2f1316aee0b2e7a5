"""A multilingual model (base; .ci/run pulls it with RUN_SLOW_TESTS=1): language detection."""

import os

import pytest

import amanuensis
from conftest import clip_path

if not os.environ.get("RUN_SLOW_TESTS"):
    pytest.skip("the multilingual model runs with RUN_SLOW_TESTS=1", allow_module_level=True)


def test_detect_language_and_info():
    model = amanuensis.WhisperModel("base", local_files_only=True)
    assert len(model.supported_languages) > 90 and "fr" in model.supported_languages
    audio = amanuensis.decode_audio(str(clip_path("librivox_0870")))
    lang, prob, probs = model.detect_language(audio)
    assert lang == "en" and prob > 0.5
    assert probs[0] == (lang, prob) and len(probs) == len(model.supported_languages)
    assert sum(p for _, p in probs) == pytest.approx(1.0, abs=1e-3)
    assert all(a[1] >= b[1] for a, b in zip(probs, probs[1:]))
    segments, info = model.transcribe(audio)
    assert info.language == "en" and info.language_probability == pytest.approx(prob, abs=0.05)
    assert "Dashwood" in "".join(s.text for s in segments)
    segments, info = model.transcribe(audio, language="en")
    assert info.language_probability == 1.0
    with pytest.raises(ValueError, match="unknown language code `xx`"):
        model.transcribe(audio, language="xx")
