"""amanuensis: local Whisper speech-to-text (Rust engine), with faster-whisper 1.2.1's API.

    from amanuensis import WhisperModel
    model = WhisperModel("tiny.en")
    segments, info = model.transcribe("audio.wav")
"""

from .audio import decode_audio
from .transcribe import (
    BatchedInferencePipeline,
    Segment,
    TranscriptionInfo,
    TranscriptionOptions,
    WhisperModel,
    Word,
)
from .vad import VadOptions

__version__ = "0.1.0"

__all__ = [
    "decode_audio",
    "WhisperModel",
    "BatchedInferencePipeline",
    "Segment",
    "Word",
    "TranscriptionInfo",
    "TranscriptionOptions",
    "VadOptions",
    "__version__",
]
