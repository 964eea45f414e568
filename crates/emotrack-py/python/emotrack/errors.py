"""The exceptions emotrack raises.

Every one is an :class:`EmotrackError` carrying the library's message (``str(e)``) and its
fields: ``code`` (``"image"``, ``"config"``, ``"model"``, ``"too_large"``, ``"video"``,
``"io"``), ``what`` (what is wrong), ``hint`` (what to do, or ``None``), ``path`` (the file
concerned, or ``None``) and ``input`` (a video source, or ``None``). Each also derives from
the built-in exception a caller would catch: bad input is a :class:`ValueError`, a missing
file a :class:`FileNotFoundError`, a video or file problem an :class:`OSError`.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "EmotrackError",
    "ConfigError",
    "ImageError",
    "ImageTooLargeError",
    "ModelError",
    "VideoError",
    "FileError",
    "MissingFileError",
    "FilePermissionError",
]


class EmotrackError(Exception):
    """Base of every error emotrack raises."""

    code: str = "error"
    what: Optional[str] = None
    hint: Optional[str] = None
    path: Optional[str] = None
    input: Optional[str] = None


class ConfigError(EmotrackError, ValueError):
    """A setting out of range or unknown (a detector name, a threshold, a tracking option)."""


class ImageError(EmotrackError, ValueError):
    """An image that cannot be used: corrupt, truncated, not an image, too small for a face,
    or an array of the wrong shape or dtype."""


class ImageTooLargeError(ImageError):
    """An image whose header claims more pixels than the decode limits allow."""


class ModelError(EmotrackError, ValueError):
    """An emotion model file that cannot be read or does not match its config."""


class VideoError(EmotrackError, OSError):
    """A video source or output that cannot be opened, read or written (FFmpeg missing, no
    such file, not a video, a camera that is not there)."""


class FileError(EmotrackError, OSError):
    """A file that cannot be read (``errno`` and ``filename`` are set)."""


class MissingFileError(FileError, FileNotFoundError):
    """A file that does not exist."""


class FilePermissionError(FileError, PermissionError):
    """A file that may not be read."""
