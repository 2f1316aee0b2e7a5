"""Audio input: ``decode_audio`` (faster-whisper's signature) and the conversion of the
``audio`` argument of ``transcribe`` into what the engine takes."""

import errno
import os
from typing import BinaryIO, Tuple, Union

import numpy as np

from . import _native


def _audio_arg(audio) -> Tuple[str, object]:
    """(kind, data) for the native module: a path, a binary file object's bytes, or a 1-D
    float32 numpy array at 16 kHz as little-endian bytes."""
    if isinstance(audio, np.ndarray):
        if audio.ndim != 1:
            raise ValueError(
                f"audio: a numpy array must be 1-D (mono samples at 16 kHz); got shape {audio.shape}"
            )
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(
                f"audio: a numpy array must hold float samples in [-1, 1] at 16 kHz; got dtype {audio.dtype}"
            )
        return "samples", np.ascontiguousarray(audio, dtype="<f4").tobytes()
    if isinstance(audio, (str, os.PathLike)):
        path = os.fspath(audio)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return "path", path
    if hasattr(audio, "read"):
        data = audio.read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError("audio: a file object must be opened in binary mode ('rb')")
        return "encoded", bytes(data)
    raise ValueError(
        f"audio: expected a path, a binary file object or a numpy array; got {type(audio).__name__}"
    )


def decode_audio(
    input_file: Union[str, BinaryIO],
    sampling_rate: int = 16000,
    split_stereo: bool = False,
) -> np.ndarray:
    """Decodes a file (path or binary file object) to mono float32 samples at 16 kHz, as
    faster-whisper does (PyAV's resampler reimplemented: the same samples on the goldens)."""
    if sampling_rate != 16000:
        raise ValueError(
            f"decode_audio: sampling_rate={sampling_rate} is not supported; only 16000 (Whisper's rate)"
        )
    if split_stereo:
        raise ValueError("decode_audio: split_stereo=True is not supported (the engine mixes to mono)")
    kind, data = _audio_arg(input_file)
    if kind == "samples":
        raise ValueError("decode_audio: expected a path or a binary file object, not an array")
    # A writable copy, as faster-whisper returns.
    return np.frombuffer(_native.decode_audio(kind, data), dtype="<f4").astype(np.float32)
