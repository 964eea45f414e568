"""Bad input raises the Python exception a caller expects, with the library's message."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import emotrack
from emotrack.errors import (
    ConfigError,
    EmotrackError,
    ImageError,
    MissingFileError,
    VideoError,
)
from conftest import KIT_WITH_ROSE


def test_a_missing_file_is_a_file_not_found_error_naming_it(analyzer, tmp_path):
    missing = tmp_path / "nowhere.jpg"
    with pytest.raises(FileNotFoundError) as e:
        analyzer.analyze(missing)
    assert isinstance(e.value, MissingFileError) and isinstance(e.value, EmotrackError)
    assert e.value.errno == errno.ENOENT
    assert e.value.filename == str(missing)
    assert e.value.code == "io"
    assert str(missing) in str(e.value)


def test_corrupt_bytes_are_an_image_error_which_is_a_value_error(analyzer):
    with pytest.raises(ValueError) as e:
        analyzer.analyze(b"this is not an image at all")
    assert isinstance(e.value, ImageError)
    assert e.value.code == "image"
    assert "<bytes>" in str(e.value)


def test_a_truncated_jpeg_says_it_is_cut_off(analyzer):
    data = KIT_WITH_ROSE.read_bytes()
    with pytest.raises(ImageError, match="cut off") as e:
        analyzer.analyze(data[: len(data) // 2])
    assert e.value.hint


def test_empty_bytes_and_an_empty_file_are_image_errors(analyzer, tmp_path):
    with pytest.raises(ImageError, match="empty"):
        analyzer.analyze(b"")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        analyzer.analyze(empty)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((100, 100, 3), dtype=np.float32),
        np.zeros((100, 100, 3), dtype=np.uint16),
        np.zeros((100, 100), dtype=np.uint8),
        np.zeros((100, 100, 4), dtype=np.uint8),
        np.zeros((2, 100, 100, 3), dtype=np.uint8),
    ],
    ids=["float32", "uint16", "2-d", "4 channels", "4-d"],
)
def test_an_array_of_the_wrong_shape_or_dtype_is_a_value_error_saying_what_is_expected(
    analyzer, array
):
    with pytest.raises(ImageError) as e:
        analyzer.analyze(array)
    assert isinstance(e.value, ValueError)
    assert str(array.shape[-1]) in str(e.value) or "uint8" in str(e.value)


def test_an_array_too_small_for_a_face_is_an_image_error(analyzer):
    with pytest.raises(ImageError, match="smaller than the smallest face"):
        analyzer.analyze(np.zeros((8, 8, 3), dtype=np.uint8))


def test_an_object_that_is_no_image_is_a_type_error(analyzer):
    with pytest.raises(TypeError, match="expected an image"):
        analyzer.analyze(42)


def test_an_unknown_detector_lists_the_known_ones():
    with pytest.raises(ConfigError, match="haar, mtcnn, yunet") as e:
        emotrack.Analyzer("retinaface")
    assert isinstance(e.value, ValueError)
    assert e.value.code == "config"


def test_out_of_range_settings_are_config_errors_naming_the_setting():
    with pytest.raises(ConfigError, match="min_face"):
        emotrack.Analyzer(min_face=3)
    with pytest.raises(ConfigError, match="window"):
        emotrack.Tracker(window=0)
    with pytest.raises(ConfigError, match="detect_every"):
        emotrack.Tracker(detect_every=0)
    with pytest.raises(ConfigError, match="frame_rate"):
        emotrack.Tracker(frame_rate=0)


def test_a_missing_model_is_an_emotrack_error(tmp_path):
    with pytest.raises(EmotrackError) as e:
        emotrack.Analyzer(model=tmp_path / "model.safetensors")
    assert "model.safetensors" in str(e.value)


def test_a_missing_video_is_a_video_error_which_is_an_os_error(tmp_path, ffmpeg):
    with pytest.raises(OSError) as e:
        emotrack.video(tmp_path / "nowhere.mp4")
    assert isinstance(e.value, VideoError)
    assert "no such file" in str(e.value)
    assert e.value.input == str(tmp_path / "nowhere.mp4")
