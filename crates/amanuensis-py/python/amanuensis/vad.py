"""Voice activity detection options (faster-whisper 1.2.1's ``VadOptions``: same fields,
order and defaults). The detection itself is the engine's (Silero VAD v6 from the model store:
``amanuensis models pull silero-vad``)."""

from dataclasses import dataclass
from typing import Optional


@dataclass
class VadOptions:
    """Silero VAD parameters.

    threshold: speech probability at or above which a 32 ms window is speech.
    neg_threshold: below this a window is silence (None: ``max(threshold - 0.15, 0.01)``).
    min_speech_duration_ms: speech chunks this short are dropped.
    max_speech_duration_s: longer chunks are split (at a silence of over 100 ms if any).
    min_silence_duration_ms: silence that ends a chunk.
    speech_pad_ms: padding on each side of a chunk.
    """

    threshold: float = 0.5
    neg_threshold: float = None  # faster-whisper annotates it so; None: max(threshold - 0.15, 0.01)
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = float("inf")
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400


def _to_native(o: VadOptions) -> dict:
    return {
        "threshold": float(o.threshold),
        "neg_threshold": None if o.neg_threshold is None else float(o.neg_threshold),
        "min_speech_duration_ms": int(o.min_speech_duration_ms),
        "max_speech_duration_s": float(o.max_speech_duration_s),
        "min_silence_duration_ms": int(o.min_silence_duration_ms),
        "speech_pad_ms": int(o.speech_pad_ms),
    }
