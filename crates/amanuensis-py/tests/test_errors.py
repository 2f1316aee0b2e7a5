"""Bad arguments and unsupported options are Python exceptions carrying the engine's message."""

import numpy as np
import pytest

import amanuensis
from amanuensis import BatchedInferencePipeline, WhisperModel
from conftest import clip_path

AUDIO = str(clip_path("librivox_0880"))


@pytest.mark.parametrize("kwargs,names", [
    (dict(log_progress=True), ["log_progress"]),
    (dict(multilingual=True, max_new_tokens=10), ["multilingual", "max_new_tokens"]),
    (dict(chunk_length=20), ["chunk_length"]),
    (dict(language_detection_segments=2), ["language_detection_segments"]),
    (dict(language_detection_threshold=0.7), ["language_detection_threshold"]),
    (dict(initial_prompt=[1, 2, 3]), ["initial_prompt"]),
])
def test_unsupported_transcribe_options_are_named(model, kwargs, names):
    with pytest.raises(ValueError) as e:
        model.transcribe(AUDIO, **kwargs)
    for n in names:
        assert n in str(e.value)


@pytest.mark.parametrize("kwargs,name", [
    (dict(device="cuda"), "device"),
    (dict(device_index=1), "device_index"),
    (dict(revision="main"), "revision"),
    (dict(compute_type="float16"), "compute_type"),
    (dict(flash_attention=True), "flash_attention"),
])
def test_unsupported_model_options_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WhisperModel("tiny.en", **kwargs)


def test_engine_messages(model):
    with pytest.raises(ValueError, match="beam size 0 must be between 1 and 16"):
        model.transcribe(AUDIO, beam_size=0)
    with pytest.raises(ValueError, match="task `dance`"):
        model.transcribe(AUDIO, task="dance")
    with pytest.raises(ValueError, match="VAD option threshold"):
        model.transcribe(AUDIO, vad_filter=True, vad_parameters={"threshold": 2.0})
    with pytest.raises(ValueError, match="vad_parameters"):
        model.transcribe(AUDIO, vad_filter=True, vad_parameters={"no_such_field": 1})
    with pytest.raises(ValueError, match="clip_timestamps replaces the VAD"):
        model.transcribe(AUDIO, vad_filter=True, clip_timestamps="1,2")
    with pytest.raises(ValueError, match="clip"):
        model.transcribe(AUDIO, clip_timestamps="5,1")
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        model.transcribe("/nonexistent/nope.wav")
    with pytest.raises(RuntimeError):
        model.transcribe(b"not audio at all" and __import__("io").BytesIO(b"not audio at all"))
    with pytest.raises(ValueError, match="1-D"):
        model.transcribe(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="expected a path"):
        model.transcribe(12345)
    with pytest.raises(ValueError, match="batch_size"):
        BatchedInferencePipeline(model).transcribe(AUDIO, batch_size=0)
    with pytest.raises(ValueError, match="sampling_rate"):
        amanuensis.decode_audio(AUDIO, sampling_rate=8000)


def test_bad_models():
    with pytest.raises(RuntimeError, match="unknown model `no-such-model`"):
        WhisperModel("no-such-model")
    with pytest.raises(RuntimeError, match="is a file"):
        WhisperModel(AUDIO)
