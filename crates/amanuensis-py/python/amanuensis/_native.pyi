"""Type stubs of the extension module (conversion layer over the Rust engine)."""

from typing import Any, Iterator, List, Optional, Tuple

DEFAULT_COMPUTE_TYPE: str

_Word = Tuple[float, float, str, float]
_Segment = Tuple[int, int, float, float, str, List[int], float, float, float, Optional[List[_Word]], float]

class Stream(Iterator[_Segment]):
    def info(self) -> Tuple[str, float, float, float]: ...
    def cancel(self) -> None: ...
    def __iter__(self) -> "Stream": ...
    def __next__(self) -> _Segment: ...

class Model:
    path: str
    is_multilingual: bool
    supported_languages: List[str]
    def __init__(
        self,
        spec: str,
        compute_type: str,
        cpu_threads: int = 0,
        download_root: Optional[str] = None,
        local_files_only: bool = False,
    ) -> None: ...
    def transcribe(
        self, kind: str, audio: Any, options: dict, vad: Optional[dict] = None, batch_size: int = 0
    ) -> Stream: ...
    def language_probabilities(self, kind: str, audio: Any) -> List[Tuple[str, float]]: ...

def decode_audio(kind: str, audio: Any) -> bytes: ...
def active_transcriptions() -> int: ...
def parse_clip_timestamps(s: str) -> List[float]: ...
