"""Shared fixtures: the test clips (the repository's testdata/), the tiny.en model from the
store (.ci/run installs it), and the CLI binary the same CI run built."""

import json
import os
import pathlib
import shutil

import pytest

HERE = pathlib.Path(__file__).resolve().parent
TESTDATA = pathlib.Path(os.environ.get("AMANUENSIS_TESTDATA", HERE.parent.parent.parent / "testdata"))
CLIPS = ["librivox_0870", "librivox_0880", "arctic_a0007", "goforward", "s01", "s05"]


def clip_path(name: str) -> pathlib.Path:
    for sub in ("human", "tts"):
        p = TESTDATA / "audio" / sub / f"{name}.wav"
        if p.exists():
            return p
    raise FileNotFoundError(name)


def golden(compute_type: str) -> dict:
    """faster-whisper 1.2.1's transcripts of the clips (tiny.en, beam 5; testdata/README.md)."""
    with open(TESTDATA / "transcripts" / f"tiny.en_{compute_type}_b5.json") as f:
        return json.load(f)["clips"]


@pytest.fixture(scope="session")
def model():
    from amanuensis import WhisperModel

    return WhisperModel("tiny.en", device="cpu", compute_type="int8")


@pytest.fixture(scope="session")
def model_f32():
    from amanuensis import WhisperModel

    return WhisperModel("tiny.en", compute_type="float32")


@pytest.fixture(scope="session")
def cli():
    """The `amanuensis` binary (AMANUENSIS_BIN, set by ci.sh), or None."""
    p = os.environ.get("AMANUENSIS_BIN") or shutil.which("amanuensis")
    if not p or not os.path.exists(p):
        pytest.fail("the amanuensis CLI binary is needed: set AMANUENSIS_BIN (ci.sh does)")
    return p
