"""`Analyzer.analyze` on every kind of input, and what a face holds."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emotrack
from conftest import CARTOON, FOUR_SMILING, KIT_WITH_ROSE, rgb_array

FACE_KEYS = {"box", "landmarks", "detector_score", "probabilities", "label", "confidence", "vibe"}


def boxes(faces):
    return sorted(f.box.to_tuple() for f in faces)


def test_a_photo_path_gives_each_face_with_box_landmarks_probabilities_label_and_vibe(analyzer):
    faces = analyzer.analyze(str(KIT_WITH_ROSE))
    assert len(faces) == 2
    for face in faces:
        assert isinstance(face, emotrack.Face)
        x, y, w, h = face.box
        assert w > 20 and h > 20
        assert len(face.landmarks) == 5
        assert set(face.probabilities) == set(emotrack.EMOTIONS)
        assert math.isclose(sum(face.probabilities.values()), 1.0, abs_tol=1e-4)
        assert face.label == max(face.probabilities, key=face.probabilities.get)
        assert face.confidence == pytest.approx(face.probabilities[face.label])
        assert 0.0 < face.detector_score <= 1.0
        assert isinstance(face.vibe, str) and face.vibe


def test_four_smiling_faces_are_read_as_happy(analyzer):
    faces = analyzer.analyze(FOUR_SMILING)
    assert len(faces) == 4
    assert sum(f.label == "happy" for f in faces) >= 3, [f.label for f in faces]


def test_a_picture_without_a_face_is_an_empty_list(analyzer):
    assert analyzer.analyze(CARTOON) == []


def test_path_pathlike_bytes_bytearray_and_memoryview_give_the_same_faces(analyzer):
    expected = [f.to_dict() for f in analyzer.analyze(str(KIT_WITH_ROSE))]
    data = KIT_WITH_ROSE.read_bytes()
    for image in (Path(KIT_WITH_ROSE), data, bytearray(data), memoryview(data)):
        assert [f.to_dict() for f in analyzer.analyze(image)] == expected, type(image)


def test_pil_images_and_arrays_rgb_or_bgr_give_the_same_faces(analyzer):
    rgb = rgb_array(KIT_WITH_ROSE)
    expected = [f.to_dict() for f in analyzer.analyze(rgb)]
    assert len(expected) == 2
    with Image.open(KIT_WITH_ROSE) as pil:
        assert [f.to_dict() for f in analyzer.analyze(pil)] == expected
        assert [f.to_dict() for f in analyzer.analyze(pil.convert("L").convert("RGB"))] != []
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert [f.to_dict() for f in analyzer.analyze(bgr, bgr=True)] == expected
    # A strided view (channels reversed in place, no copy) is read in its logical order.
    assert [f.to_dict() for f in analyzer.analyze(rgb[:, :, ::-1], bgr=True)] == expected
    # Read as RGB, the BGR array is another picture: the emotions change.
    assert [f.to_dict() for f in analyzer.analyze(bgr)] != expected
    # Fortran order (numpy.asfortranarray, some decoders' output) is read in its logical order.
    assert [f.to_dict() for f in analyzer.analyze(np.asfortranarray(rgb))] == expected


#: Measures, in a fresh process, how much the peak memory grows while `analyze` reads a large
#: C-contiguous RGB array, then the same pixels as a BGR array (which must be copied into RGB):
#: prints the faces found and both growths as fractions of the array's size.
PEAK_MEMORY = """
import resource, sys
import numpy as np
from PIL import Image
import emotrack

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

analyzer = emotrack.Analyzer()
photo = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
frame = np.zeros((4000, 6000, 3), np.uint8)
frame[1000 : 1000 + photo.shape[0], 2000 : 2000 + photo.shape[1]] = photo
bgr = np.ascontiguousarray(frame[:, :, ::-1])
analyzer.analyze(photo)  # the first analysis sets up buffers and threads that stay
before = peak()
faces = len(analyzer.analyze(frame))
in_place = peak() - before
before = peak()
assert len(analyzer.analyze(bgr, bgr=True)) == faces
copied = peak() - before
print(faces, in_place / frame.nbytes, copied / frame.nbytes)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_a_contiguous_rgb_array_is_read_in_place_and_a_bgr_one_is_copied_once():
    out = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(KIT_WITH_ROSE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    faces, in_place, copied = int(out[0]), float(out[1]), float(out[2])
    assert faces == 2
    # Reading in place adds small buffers only (the detector's shrunk picture, the faces'
    # regions made gray): 0.004-0.005x; a copy adds the whole array (the BGR one, converted).
    assert in_place < 0.1, f"analysing the RGB array grew the peak memory by {in_place:.2f}x its size"
    assert copied > 0.8, f"converting the BGR array grew it by {copied:.2f}x only"


def test_a_decoded_array_finds_what_the_file_finds(analyzer):
    # PIL and the library decode the JPEG alike to within rounding: the same faces, boxes
    # within a pixel.
    from_file = analyzer.analyze(KIT_WITH_ROSE)
    from_array = analyzer.analyze(rgb_array(KIT_WITH_ROSE))
    assert [f.label for f in sorted(from_file, key=lambda f: f.box.x)] == [
        f.label for f in sorted(from_array, key=lambda f: f.box.x)
    ]
    for a, b in zip(boxes(from_file), boxes(from_array)):
        assert a == pytest.approx(b, abs=1.0)


def test_to_dict_is_the_json_shape_of_the_cli(analyzer):
    face = analyzer.analyze(KIT_WITH_ROSE)[0]
    d = face.to_dict()
    assert set(d) == FACE_KEYS
    assert set(d["box"]) == {"x", "y", "w", "h"}
    assert d["label"] == face.label
    # Rounded as the CLI prints: probabilities to 4 decimals, pixels to 0.1.
    for p in d["probabilities"].values():
        assert round(p, 4) == p
    assert d["box"]["x"] == round(face.box.x, 1)
    assert json.loads(face.to_json()) == d


def test_to_dict_equals_the_cli_output_face_for_face(analyzer):
    """The same faces as `emotrack analyze --format json` prints, field for field
    (EMOTRACK_BIN: the CLI binary; CI sets it to the one its tests built)."""
    binary = os.environ.get("EMOTRACK_BIN")
    if not binary:
        pytest.skip("EMOTRACK_BIN is not set")
    out = subprocess.run(
        [binary, "analyze", str(KIT_WITH_ROSE), "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (image,) = json.loads(out)
    assert [f.to_dict() for f in analyzer.analyze(KIT_WITH_ROSE)] == image["faces"]


def test_given_boxes_are_classified_without_detection(analyzer):
    found = analyzer.analyze(KIT_WITH_ROSE)
    given = [f.box for f in found]
    again = analyzer.analyze(KIT_WITH_ROSE, boxes=given)
    assert [f.box for f in again] == given
    tuples = analyzer.analyze(KIT_WITH_ROSE, boxes=[tuple(b) for b in given])
    assert [f.label for f in tuples] == [f.label for f in again]
    assert analyzer.analyze(KIT_WITH_ROSE, boxes=[]) == []
    for bad in [(10, 10, 0, 40), (10, 10, 40, -1), (math.inf, 10, 40, 40), (10, 10, math.nan, 40)]:
        with pytest.raises(emotrack.ImageError, match="finite, with a positive width"):
            analyzer.analyze(KIT_WITH_ROSE, boxes=[bad])


@pytest.mark.parametrize("detector", ["yunet", "haar"])
def test_every_detector_finds_the_faces(detector):
    analyzer = emotrack.Analyzer(detector)
    assert analyzer.detector == detector
    faces = analyzer.analyze(KIT_WITH_ROSE)
    # Haar (OpenCV's cascade) also fires on two non-faces here, as OpenCV itself does
    # (tests/fixtures/fer/reference.json: fer's Haar boxes).
    assert len(faces) == (2 if detector == "yunet" else 4)
    if detector == "haar":
        assert all(f.landmarks is None for f in faces)
        assert "landmarks" not in faces[0].to_dict()


def test_face_sizes_bound_what_is_searched(analyzer):
    largest = max(max(f.box.w, f.box.h) for f in analyzer.analyze(KIT_WITH_ROSE))
    assert len(emotrack.Analyzer(max_face=int(largest) - 1).analyze(KIT_WITH_ROSE)) < 2
    # MTCNN's pyramid starts at min_face; YuNet's min_face sets only how far the picture may
    # be shrunk, and smaller faces it finds are kept (emotrack::detect::yunet, "Scale").
    assert emotrack.Analyzer("mtcnn", min_face=300).analyze(KIT_WITH_ROSE) == []


def test_the_shared_photos_are_all_analysed(analyzer, media):
    photos = sorted((media / "photos").glob("*.jpg"))
    assert photos
    for photo in photos:
        faces = analyzer.analyze(photo)
        for face in faces:
            assert face.label in emotrack.EMOTIONS
    # Two frontal faces (crates/emotrack/tests/mtcnn.rs counts them too).
    assert len(analyzer.analyze(media / "photos" / "ageitgey_two_people.jpg")) == 2
    for photo in sorted((media / "no_faces").iterdir()):
        assert len(analyzer.analyze(photo)) <= 1, photo
