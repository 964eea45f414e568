"""emotrack: facial emotion recognition on a Rust core.

>>> import emotrack
>>> analyzer = emotrack.Analyzer()                     # doctest: +SKIP
>>> [f.label for f in analyzer.analyze("photo.jpg")]   # doctest: +SKIP
['happy', 'neutral']

* :class:`Analyzer` finds faces and reads seven emotions in a photo or frame (a path, bytes,
  a PIL image or a NumPy array, RGB or ``bgr=True``): a list of :class:`Face`;
  ``Analyzer.classify`` reads faces that are already cut out (FER-2013 images, your own
  detector's crops) without detection, as ``emotrack eval`` does.
* :class:`Tracker` follows faces over a stream of frames (stable ids, smoothed labels):
  :class:`FrameReport` per frame.
* :func:`video` analyses a video file, camera or stream through FFmpeg: an iterator of
  :class:`FrameReport`, with the CLI's outputs (annotated video, JSONL, CSV, timeline).
* :mod:`emotrack.compat` holds ``FER``, a drop-in for the ``fer`` package.
* :mod:`emotrack.errors` holds the exceptions.

``Face.to_dict()`` is the JSON shape of ``emotrack analyze --format json``.
"""

from ._emotrack import (
    DETECTORS,
    EMOTIONS,
    Analyzer,
    Box,
    Face,
    FrameReport,
    TrackedFace,
    Tracker,
    VideoFrames,
    __version__,
    video,
)
from .errors import (
    ConfigError,
    EmotrackError,
    ImageError,
    ImageTooLargeError,
    ModelError,
    VideoError,
)

__all__ = [
    "Analyzer",
    "Box",
    "ConfigError",
    "DETECTORS",
    "EMOTIONS",
    "EmotrackError",
    "Face",
    "FrameReport",
    "ImageError",
    "ImageTooLargeError",
    "ModelError",
    "TrackedFace",
    "Tracker",
    "VideoError",
    "VideoFrames",
    "__version__",
    "video",
]
