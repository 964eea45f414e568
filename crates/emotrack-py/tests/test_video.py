"""`emotrack.video`: frame reports over FFmpeg, and the CLI's outputs."""

from __future__ import annotations

import csv
import json

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
