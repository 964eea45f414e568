"""Shared fixtures: the repository's small test media (always there) and the shared media
folder (`../shared/media` beside the repository, or `$EMOTRACK_MEDIA`), whose tests skip when
it is absent unless `EMOTRACK_REQUIRE_DATA=1` (CI), as the Rust tests do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import emotrack

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"

#: Two faces (tests/fixtures/README.md).
KIT_WITH_ROSE = FIXTURES / "photos" / "ageitgey_kit_with_rose.jpg"
#: Four faces, all smiling.
FOUR_SMILING = FIXTURES / "photos" / "linzaer_imgs_2.jpg"
#: No human face (cartoon creatures).
CARTOON = FIXTURES / "no_faces" / "fer_no-faces_cartoon.jpg"
#: One face in every frame; 596x336, 25 fps, 115 frames.
FER_VIDEO = FIXTURES / "videos" / "fer_test.mp4"


def require_data() -> bool:
    return os.environ.get("EMOTRACK_REQUIRE_DATA") == "1"


def missing(what: str) -> None:
    """Skips the test for want of `what`, or fails it where data is required (CI)."""
    if require_data():
        pytest.fail(f"{what} is required (EMOTRACK_REQUIRE_DATA=1)")
    pytest.skip(f"{what} is absent")


@pytest.fixture(scope="session")
def media() -> Path:
    """The shared media folder."""
    path = Path(os.environ.get("EMOTRACK_MEDIA", REPO.parent / "shared" / "media"))
    if not path.is_dir():
        missing(f"the shared media folder {path}")
    return path


@pytest.fixture(scope="session")
def fer2013_val() -> Path:
    """FER-2013's val split in folder layout (`../shared/datasets/fer2013/val` beside the
    repository, or `$EMOTRACK_FER2013/val`, as the Rust tests find it)."""
    root = Path(os.environ.get("EMOTRACK_FER2013", REPO.parent / "shared" / "datasets" / "fer2013"))
    path = root / "val"
    if not path.is_dir():
        missing(f"the FER-2013 val split {path}")
    return path


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    """FFmpeg, which video needs."""
    path = shutil.which("ffmpeg")
    if path is None or shutil.which("ffprobe") is None:
        missing("ffmpeg")
    return path


@pytest.fixture(scope="session")
def analyzer() -> emotrack.Analyzer:
    """The default analyzer (YuNet, the built-in model), built once."""
    return emotrack.Analyzer()


def rgb_array(path: Path) -> np.ndarray:
    """A photo's pixels as an (h, w, 3) uint8 RGB array, decoded by PIL."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def video_frames(path: Path, ffmpeg: str, width: int, height: int) -> list:
    """Every frame of a video as RGB arrays, decoded by FFmpeg as the library does."""
    raw = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        check=True,
        capture_output=True,
    ).stdout
    frame = width * height * 3
    return [
        np.frombuffer(raw[i : i + frame], dtype=np.uint8).reshape(height, width, 3)
        for i in range(0, len(raw) - frame + 1, frame)
    ]
