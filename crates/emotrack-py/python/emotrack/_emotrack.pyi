"""Type stubs of the native module (see the docstrings at run time for the details)."""

import os
from pathlib import Path
from types import TracebackType
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Type, Union

import numpy as np
import numpy.typing as npt

__version__: str
DETECTORS: List[str]
EMOTIONS: List[str]

#: A path, encoded bytes, a PIL image or a NumPy array (height, width, 3) of uint8 (RGB, or
#: BGR with bgr=True). A C-contiguous RGB array is read in place, with the GIL released: do not
#: write to it from another thread during the call. Other arrays are copied once.
ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, npt.NDArray[np.uint8], Any]
BoxInput = Union["Box", Tuple[float, float, float, float], Sequence[float]]
#: A face already cut out: any ImageInput, or a gray NumPy array (height, width) of uint8.
CropInput = ImageInput

class Box:
    x: float
    y: float
    w: float
    h: float
    def __init__(self, x: float, y: float, w: float, h: float) -> None: ...
    def __iter__(self) -> Iterator[float]: ...
    def __len__(self) -> int: ...
    def to_tuple(self) -> Tuple[float, float, float, float]: ...

class Face:
    @property
    def box(self) -> Box: ...
    @property
    def landmarks(self) -> Optional[List[Tuple[float, float]]]: ...
    @property
    def detector_score(self) -> float: ...
    @property
    def probabilities(self) -> Dict[str, float]: ...
    @property
    def label(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def vibe(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...

class TrackedFace:
    @property
    def id(self) -> int: ...
    @property
    def box(self) -> Box: ...
    @property
    def detected_box(self) -> Box: ...
    @property
    def landmarks(self) -> Optional[List[Tuple[float, float]]]: ...
    @property
    def detector_score(self) -> float: ...
    @property
    def probabilities(self) -> Dict[str, float]: ...
    @property
    def smoothed(self) -> Dict[str, float]: ...
    @property
    def label(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def vibe(self) -> str: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def to_json(self) -> str: ...

class FrameReport:
    @property
    def index(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def detected(self) -> bool: ...
    @property
    def faces(self) -> List[TrackedFace]: ...
    def records(self) -> List[Dict[str, Any]]: ...
    def to_dict(self) -> Dict[str, Any]: ...
    def __len__(self) -> int: ...

class Analyzer:
    def __init__(
        self,
        detector: str = "yunet",
        model: Optional[Union[str, os.PathLike]] = None,
        *,
        min_face: Optional[int] = None,
        max_face: Optional[int] = None,
        threshold: Optional[float] = None,
        min_neighbors: Optional[int] = None,
        scale_factor: Optional[float] = None,
        vibes: Optional[Union[str, os.PathLike]] = None,
    ) -> None: ...
    @property
    def detector(self) -> str: ...
    def analyze(
        self,
        image: ImageInput,
        *,
        bgr: bool = False,
        boxes: Optional[Sequence[BoxInput]] = None,
    ) -> List[Face]: ...
    def classify(self, crops: Iterable[CropInput], *, bgr: bool = False) -> List[Face]: ...

class Tracker:
    def __init__(
        self,
        analyzer: Optional[Analyzer] = None,
        *,
        detector: str = "yunet",
        frame_rate: Optional[float] = None,
        detect_every: Optional[int] = None,
        min_hits: Optional[int] = None,
        max_age: Optional[int] = None,
        iou_threshold: Optional[float] = None,
        window: Optional[int] = None,
        ema: Optional[float] = None,
        box_alpha: Optional[float] = None,
        label_margin: Optional[float] = None,
        label_hold: Optional[float] = None,
        label_fast_margin: Optional[float] = None,
        label_fast_hold: Optional[float] = None,
        label_min_show: Optional[float] = None,
    ) -> None: ...
    def update(
        self, frame: ImageInput, timestamp: Optional[float] = None, *, bgr: bool = False
    ) -> FrameReport: ...
    def reset(self) -> None: ...
    @property
    def frames(self) -> int: ...

class VideoFrames(Iterator[FrameReport]):
    def __iter__(self) -> "VideoFrames": ...
    def __next__(self) -> FrameReport: ...
    def close(self) -> None: ...
    def __enter__(self) -> "VideoFrames": ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    @property
    def info(self) -> Dict[str, Any]: ...
    @property
    def stats(self) -> Optional[Dict[str, Any]]: ...
    @property
    def written(self) -> List[Path]: ...

def video(
    source: Union[str, os.PathLike],
    analyzer: Optional[Analyzer] = None,
    *,
    detector: str = "yunet",
    fps: Optional[float] = None,
    duration: Optional[float] = None,
    size: Optional[Tuple[int, int]] = None,
    live: Optional[bool] = None,
    stall_timeout: Optional[float] = None,
    detect_every: Optional[int] = None,
    min_hits: Optional[int] = None,
    max_age: Optional[int] = None,
    iou_threshold: Optional[float] = None,
    window: Optional[int] = None,
    ema: Optional[float] = None,
    box_alpha: Optional[float] = None,
    label_margin: Optional[float] = None,
    label_hold: Optional[float] = None,
    label_fast_margin: Optional[float] = None,
    label_fast_hold: Optional[float] = None,
    label_min_show: Optional[float] = None,
    out: Optional[Union[str, os.PathLike]] = None,
    jsonl: Optional[Union[str, os.PathLike]] = None,
    csv: Optional[Union[str, os.PathLike]] = None,
    timeline: Optional[Union[str, os.PathLike]] = None,
    out_dir: Optional[Union[str, os.PathLike]] = None,
) -> VideoFrames: ...
