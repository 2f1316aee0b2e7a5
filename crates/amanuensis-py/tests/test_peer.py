"""Against faster-whisper 1.2.1 itself, installed in the same venv (RUN_SLOW_TESTS=1; ci.sh
installs it then). Its models come from the peer folder (../shared/peer/setup.sh:
~/.cache/amanuensis-peer/models, or $PEER_ROOT/models)."""

import dataclasses
import inspect
import os
import pathlib

import pytest

import amanuensis
from conftest import CLIPS, clip_path

if not os.environ.get("RUN_SLOW_TESTS"):
    pytest.skip("comparisons with faster-whisper run with RUN_SLOW_TESTS=1", allow_module_level=True)

faster_whisper = pytest.importorskip("faster_whisper")
PEER_MODELS = pathlib.Path(os.environ.get("PEER_ROOT", pathlib.Path.home() / ".cache/amanuensis-peer")) / "models"


def typename(t) -> str:
    s = repr(t)
    for m in ("amanuensis.transcribe.", "faster_whisper.transcribe.", "amanuensis.vad.", "faster_whisper.vad."):
        s = s.replace(m, "")
    return s


def params(f):
    return [(p.name, p.default) for p in inspect.signature(f).parameters.values() if p.kind != p.VAR_KEYWORD]


def test_same_signatures_and_fields():
    assert faster_whisper.__version__ == "1.2.1"
    for ours, theirs in [
        (amanuensis.WhisperModel.__init__, faster_whisper.WhisperModel.__init__),
        (amanuensis.WhisperModel.transcribe, faster_whisper.WhisperModel.transcribe),
        (amanuensis.WhisperModel.detect_language, faster_whisper.WhisperModel.detect_language),
        (amanuensis.BatchedInferencePipeline.transcribe, faster_whisper.BatchedInferencePipeline.transcribe),
        (amanuensis.decode_audio, faster_whisper.decode_audio),
    ]:
        assert params(ours) == params(theirs), ours.__qualname__
    from faster_whisper import transcribe as ft, vad as fv
    for ours, theirs in [
        (amanuensis.Segment, ft.Segment), (amanuensis.Word, ft.Word),
        (amanuensis.TranscriptionInfo, ft.TranscriptionInfo),
        (amanuensis.TranscriptionOptions, ft.TranscriptionOptions), (amanuensis.VadOptions, fv.VadOptions),
    ]:
        assert [(f.name, typename(f.type), f.default) for f in dataclasses.fields(ours)] == \
               [(f.name, typename(f.type), f.default) for f in dataclasses.fields(theirs)], ours.__name__


def test_same_tokens_as_faster_whisper_f32(model_f32):
    peer = faster_whisper.WhisperModel(str(PEER_MODELS / "tiny.en"), device="cpu", compute_type="float32")
    for name in CLIPS:
        path = str(clip_path(name))
        theirs, tinfo = peer.transcribe(path, word_timestamps=True)
        ours, oinfo = model_f32.transcribe(path, word_timestamps=True)
        theirs, ours = list(theirs), list(ours)
        assert [s.tokens for s in ours] == [s.tokens for s in theirs], name
        assert [s.text for s in ours] == [s.text for s in theirs], name
        for a, b in zip(ours, theirs):
            assert (a.id, a.seek) == (b.id, b.seek)
            assert a.start == pytest.approx(b.start, abs=0.021) and a.end == pytest.approx(b.end, abs=0.021)
            assert [w.word for w in a.words] == [w.word for w in b.words]
        assert oinfo.duration == pytest.approx(tinfo.duration, abs=1e-3)
    audio = faster_whisper.decode_audio(str(clip_path("librivox_0870")))
    assert (amanuensis.decode_audio(str(clip_path("librivox_0870"))) == audio).all()
