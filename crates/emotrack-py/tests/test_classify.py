"""`Analyzer.classify`: faces that are already cut out, read without detection, as `emotrack
eval` reads FER-2013's crops."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotrack
from conftest import REPO

#: What the built-in model's config records for FER-2013 val (models/emotion.json, written by
#: `emotrack ensemble --data .../val`, the evaluation `emotrack eval` runs).
MODEL_CONFIG = REPO / "models" / "emotion.json"


def val_files(val: Path) -> list:
    """(path, emotion) of every crop of the split, emotions in folder order."""
    return [
        (path, folder.name)
        for folder in sorted(p for p in val.iterdir() if p.is_dir())
        for path in sorted(folder.iterdir())
    ]


def gray(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def test_every_val_crop_gets_the_label_emotrack_eval_gives_it(analyzer, fer2013_val):
    files = val_files(fer2013_val)
    assert len(files) == 3589
    faces = analyzer.classify([path for path, _ in files])
    right = sum(face.label == emotion for face, (_, emotion) in zip(faces, files))
    recorded = json.loads(MODEL_CONFIG.read_text())["provenance"]["val_accuracy"]
    # The same crops, decoded and classified by the same library code: the same accuracy to
    # the image (68.38%: 2454 of 3589).
    assert right == round(recorded * len(files)), right / len(files)


def test_a_crop_is_read_alike_as_a_gray_or_colour_array_a_pil_image_or_encoded_bytes(
    analyzer, fer2013_val
):
    path, _ = val_files(fer2013_val)[0]
    pixels = gray(path)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    rgb = np.stack([pixels] * 3, axis=-1)
    crops = [
        pixels,
        rgb,
        np.ascontiguousarray(rgb[:, :, ::-1]),
        Image.fromarray(pixels),
        Image.fromarray(rgb),
        png.getvalue(),
    ]
    faces = analyzer.classify(crops)
    assert [f.to_dict() for f in faces[1:]] == [faces[0].to_dict()] * 5
    # Read by path, emotrack decodes the JPEG itself (to within a gray level of PIL).
    (by_path,) = analyzer.classify([path])
    assert by_path.probabilities == pytest.approx(faces[0].probabilities, abs=0.05)


def test_a_face_is_its_whole_crop_with_no_landmarks(analyzer, fer2013_val):
    path, emotion = val_files(fer2013_val)[0]
    (face,) = analyzer.classify([gray(path)])
    assert face.box.to_tuple() == (0.0, 0.0, 48.0, 48.0)
    assert face.landmarks is None and face.detector_score == 1.0
    assert set(face.probabilities) == set(emotrack.EMOTIONS)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.vibe


def test_crops_of_other_sizes_are_resized_to_the_models_input(analyzer, fer2013_val):
    files = val_files(fer2013_val)[::50]
    small = [gray(path) for path, _ in files]
    large = [np.asarray(Image.fromarray(c).resize((120, 120), Image.BICUBIC)) for c in small]
    at_48, at_120 = analyzer.classify(small), analyzer.classify(large)
    assert {f.box.to_tuple() for f in at_120} == {(0.0, 0.0, 120.0, 120.0)}
    same = sum(a.label == b.label for a, b in zip(at_48, at_120))
    assert same >= 0.85 * len(files), f"{same} of {len(files)}"


def test_a_batch_gives_what_one_crop_at_a_time_gives(analyzer, fer2013_val):
    crops = [gray(path) for path, _ in val_files(fer2013_val)[::300]]
    batch = analyzer.classify(crops)
    assert [f.to_dict() for f in batch] == [analyzer.classify([c])[0].to_dict() for c in crops]
    assert analyzer.classify([]) == []


def test_a_crop_is_not_held_to_the_smallest_face_searched_for(fer2013_val):
    path, _ = val_files(fer2013_val)[0]
    strict = emotrack.Analyzer("mtcnn", min_face=80)
    with pytest.raises(emotrack.ImageError):
        strict.analyze(path)  # 48x48: smaller than any face MTCNN would look for
    (face,) = strict.classify([path])
    assert face.box.w == 48


def test_one_crop_not_in_a_list_is_a_type_error(analyzer):
    with pytest.raises(TypeError, match=r"pass \[crop\]"):
        analyzer.classify(np.zeros((48, 48), np.uint8))
    with pytest.raises(TypeError, match=r"pass \[crop\]"):
        analyzer.classify("face.png")


def test_bad_crops_raise_image_errors_naming_the_problem(analyzer, tmp_path):
    with pytest.raises(emotrack.ImageError, match="holds no face"):
        analyzer.classify([np.zeros((0, 48), np.uint8)])
    with pytest.raises(emotrack.ImageError, match="dtype uint8"):
        analyzer.classify([np.zeros((48, 48), np.float32)])
    with pytest.raises(FileNotFoundError):
        analyzer.classify([tmp_path / "missing.png"])
