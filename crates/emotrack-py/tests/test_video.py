"""`emotrack.video`: frame reports over FFmpeg, and the CLI's outputs."""

from __future__ import annotations

import csv
import json
import os
import subprocess

import pytest

import emotrack
from conftest import FER_VIDEO


def test_every_frame_of_a_file_is_reported_in_order_with_the_face_tracked(analyzer, ffmpeg):
    frames = emotrack.video(FER_VIDEO, analyzer)
    assert frames.info["width"] == 596 and frames.info["height"] == 336
    reports = list(frames)
    assert [r.index for r in reports] == list(range(115))
    assert all(b.time > a.time for a, b in zip(reports, reports[1:]))
    # One woman in every frame: one track, shown from the third frame on (min_hits).
    ids = {f.id for r in reports for f in r.faces}
    assert ids == {1}, ids
    assert sum(len(r.faces) == 1 for r in reports) >= 100
    assert frames.stats["end"] == "finished"
    assert frames.stats["analysed"] == 115


def test_the_outputs_are_the_clis(analyzer, ffmpeg, tmp_path):
    jsonl, table = tmp_path / "faces.jsonl", tmp_path / "tracks.csv"
    frames = emotrack.video(FER_VIDEO, analyzer, jsonl=jsonl, csv=table)
    records = [record for report in frames for record in report.records()]
    assert [json.loads(line) for line in jsonl.read_text().splitlines()] == records
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 1
    assert {str(p) for p in frames.written} == {str(jsonl), str(table)}


def test_out_dir_writes_all_four_outputs(analyzer, ffmpeg, tmp_path):
    frames = emotrack.video(FER_VIDEO, analyzer, out_dir=tmp_path / "run", fps=5)
    assert 10 <= len(list(frames)) <= 30
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["annotated.mp4", "faces.jsonl", "timeline.png", "tracks.csv"]


def test_leaving_a_with_block_early_stops_the_run_and_finishes_the_outputs(
    analyzer, ffmpeg, tmp_path
):
    jsonl = tmp_path / "faces.jsonl"
    with emotrack.video(FER_VIDEO, analyzer, jsonl=jsonl) as frames:
        for report in frames:
            if report.index == 9:
                break
    assert frames.stats["end"] == "stopped"
    assert frames.stats["analysed"] < 115
    lines = jsonl.read_text().splitlines()
    assert lines and all(json.loads(line)["frame"] <= frames.stats["analysed"] for line in lines)


def test_sampling_and_duration_of_a_shared_clip(analyzer, ffmpeg, media):
    reports = list(
        emotrack.video(media / "videos" / "short_hamilton_clip.mp4", analyzer, fps=5, duration=2)
    )
    # At most 2 s at 5 fps; ffmpeg counts the duration from the file's start (0.008 s) and the
    # video stream starts at 0.85 s, so about 6 frames come.
    assert 5 <= len(reports) <= 10
    assert all(b.time - a.time == pytest.approx(0.2, abs=0.01) for a, b in zip(reports, reports[1:]))
    assert any(r.faces for r in reports)


#: The label rule switched off: the shown label is the top smoothed emotion on every frame.
INSTANT_LABELS = dict(
    label_margin=0, label_hold=0, label_fast_margin=0, label_fast_hold=0, label_min_show=0
)


def label_changes(reports) -> int:
    shown, changes = {}, 0
    for report in reports:
        for face in report.faces:
            changes += face.id in shown and shown[face.id] != face.label
            shown[face.id] = face.label
    return changes


def test_the_label_rule_options_set_when_the_shown_label_changes(analyzer, ffmpeg):
    # No probability smoothing (window=1), so that only the label rule differs.
    steady = list(emotrack.video(FER_VIDEO, analyzer, window=1))
    instant = list(emotrack.video(FER_VIDEO, analyzer, window=1, **INSTANT_LABELS))
    faces = [f for r in instant for f in r.faces]
    assert len(faces) >= 100
    assert all(f.label == max(f.smoothed, key=f.smoothed.get) for f in faces)
    # The default rule (a lead of 0.2 held 0.5 s, labels up at least 0.5 s) changes less.
    changes = label_changes(steady), label_changes(instant)
    assert 2 * changes[0] < changes[1], changes


def test_ema_smoothing_replaces_the_window(analyzer, ffmpeg):
    # The newest frame's weight 1: no smoothing at all.
    reports = list(emotrack.video(FER_VIDEO, analyzer, ema=1.0, duration=2))
    faces = [f for r in reports for f in r.faces]
    assert faces
    assert all(f.smoothed == pytest.approx(f.probabilities, abs=1e-4) for f in faces)
    smoothed = [f for r in emotrack.video(FER_VIDEO, analyzer, ema=0.2, duration=2) for f in r.faces]
    assert any(f.smoothed != pytest.approx(f.probabilities, abs=1e-3) for f in smoothed)


def test_bad_smoothing_label_and_stall_options_raise_config_errors_before_any_frame(analyzer):
    cases = [
        (dict(window=4, ema=0.2), "not both"),
        (dict(ema=0.0), "EMA alpha is 0"),
        (dict(label_margin=1.5), "margin is 1.5"),
        (dict(label_margin=0.6, label_fast_margin=0.5), "fast_margin"),
        (dict(label_hold=-1), "hold is -1"),
        (dict(stall_timeout=-1), "stall_timeout is -1"),
        (dict(stall_timeout=0.01), "stall timeout must be at least 0.1 s"),
    ]
    for options, message in cases:
        with pytest.raises(emotrack.ConfigError, match=message):
            emotrack.video(FER_VIDEO, analyzer, **options)
        if "stall_timeout" not in options:
            with pytest.raises(emotrack.ConfigError, match=message):
                emotrack.Tracker(analyzer, **options)


def test_the_options_give_the_clis_jsonl(analyzer, ffmpeg, tmp_path):
    """`video(...)` with the label, smoothing and stall options writes the JSONL that `emotrack
    video` writes with the same flags (EMOTRACK_BIN: the CLI binary)."""
    binary = os.environ.get("EMOTRACK_BIN")
    if not binary:
        pytest.skip("EMOTRACK_BIN is not set")
    options = dict(ema=0.5, label_margin=0.1, label_hold=0.2, label_min_show=0.3, stall_timeout=5)
    ours = tmp_path / "py.jsonl"
    list(emotrack.video(FER_VIDEO, analyzer, jsonl=ours, **options))
    theirs = tmp_path / "cli.jsonl"
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in options.items()]
    subprocess.run(
        [binary, "video", str(FER_VIDEO), "--jsonl", str(theirs), *flags],
        check=True,
        capture_output=True,
    )
    assert ours.read_text() == theirs.read_text()
