"""`Tracker.update` over a caller's own frames: ids, smoothing, and the same reports as the
video pipeline."""

from __future__ import annotations

import pytest

import emotrack
from conftest import FER_VIDEO, KIT_WITH_ROSE, rgb_array, video_frames


def test_faces_are_shown_after_min_hits_frames_with_stable_ids(analyzer):
    tracker = emotrack.Tracker(analyzer)
    frame = rgb_array(KIT_WITH_ROSE)
    reports = [tracker.update(frame) for _ in range(6)]
    # The default min_hits is 3: one-frame false detections are never shown.
    assert [len(r.faces) for r in reports] == [0, 0, 2, 2, 2, 2]
    assert [sorted(f.id for f in r.faces) for r in reports[2:]] == [[1, 2]] * 4
    assert tracker.frames == 6
    face = reports[-1].faces[0]
    assert isinstance(face, emotrack.TrackedFace)
    assert face.smoothed == pytest.approx(face.probabilities, abs=1e-4)
    assert face.confidence == pytest.approx(face.smoothed[face.label])


def test_without_timestamps_frames_are_one_frame_rate_apart(analyzer):
    tracker = emotrack.Tracker(analyzer, frame_rate=10)
    frame = rgb_array(KIT_WITH_ROSE)
    times = [tracker.update(frame).time for _ in range(3)]
    assert times == pytest.approx([0.0, 0.1, 0.2])
    assert tracker.update(frame, timestamp=5.0).time == 5.0


def test_reset_forgets_the_faces(analyzer):
    tracker = emotrack.Tracker(analyzer, min_hits=1)
    frame = rgb_array(KIT_WITH_ROSE)
    assert len(tracker.update(frame).faces) == 2
    tracker.reset()
    assert tracker.frames == 0
    assert sorted(f.id for f in tracker.update(frame).faces) == [1, 2]


def test_a_tracked_face_dict_is_the_jsonl_shape(analyzer):
    tracker = emotrack.Tracker(analyzer, min_hits=1)
    report = tracker.update(KIT_WITH_ROSE)
    d = report.faces[0].to_dict()
    assert set(d) >= {"id", "box", "detected_box", "probabilities", "smoothed", "label"}
    (record, _) = report.records()
    assert record["time"] == 0.0 and record["frame"] == 0
    assert {k: v for k, v in record.items() if k not in ("time", "frame")} == d
    assert report.to_dict()["faces"][0] == d


def test_a_tracker_of_bgr_frames_reads_them_as_rgb(analyzer):
    rgb = rgb_array(KIT_WITH_ROSE)
    a = emotrack.Tracker(analyzer, min_hits=1).update(rgb)
    b = emotrack.Tracker(analyzer, min_hits=1).update(rgb[:, :, ::-1].copy(), bgr=True)
    assert a.to_dict() == b.to_dict()


def test_the_tracker_reports_what_the_video_pipeline_reports(analyzer, ffmpeg):
    """A user's own decode loop through Tracker gives video()'s reports frame for frame."""
    frames = video_frames(FER_VIDEO, ffmpeg, 596, 336)[:40]
    tracker = emotrack.Tracker(analyzer, frame_rate=25)
    mine = [tracker.update(f, timestamp=i / 25).to_dict() for i, f in enumerate(frames)]
    theirs = []
    for report in emotrack.video(FER_VIDEO, analyzer):
        theirs.append(report.to_dict())
        if len(theirs) == len(mine):
            break
    assert [r["faces"] for r in mine] == [r["faces"] for r in theirs]
