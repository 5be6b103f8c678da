"""The emotion evaluation's bookkeeping on synthetic readings (no server, no networks)."""

from __future__ import annotations

import csv

import numpy as np

from clients.eval_emotions import (
    EMOTIONS,
    SOURCE,
    Reading,
    central_face,
    format_report,
    shares_by_source,
    summarize,
    write_csv,
)
from reenact.emotion_classifier import LABELS
from reenact.landmarks.detection import FaceDetection


def _reading(intended: str, read: str, distance: float = 0.3, case: str = "c") -> Reading:
    probabilities = np.full(len(LABELS), 0.01, np.float32)
    probabilities[LABELS.index(read)] = 0.94
    return Reading(case, intended, probabilities, distance)


def _failure(intended: str) -> Reading:
    return Reading("c", intended, np.full(len(LABELS), np.nan, np.float32), error="no face")


def _synthetic() -> list[Reading]:
    readings = [_reading(SOURCE, "neutral", float("nan"))]
    readings += [_reading("happy", "happy", 0.2), _reading("happy", "happy", 0.4)]
    readings += [_reading("sad", "neutral", 0.5), _reading("sad", "sad", 0.7)]
    readings += [_reading("angry", "disgusted", 0.65), _failure("angry")]
    readings += [_reading("surprised", "surprised", 0.1)]
    return readings


def test_confusion_counts_rows_asked_columns_read():
    summary = summarize(_synthetic())
    assert summary.confusion.shape == (6, 7)
    happy, sad, angry = (EMOTIONS.index(e) for e in ("happy", "sad", "angry"))
    assert summary.confusion[happy, LABELS.index("happy")] == 2
    assert summary.confusion[sad, LABELS.index("neutral")] == 1
    assert summary.confusion[sad, LABELS.index("sad")] == 1
    assert summary.confusion[angry, LABELS.index("disgusted")] == 1
    assert summary.confusion.sum() == 6  # the source and the failure are not in the matrix
    assert summary.failures["angry"] == 1


def test_shares_count_failures_as_misses():
    summary = summarize(_synthetic())
    assert summary.share("happy") == 1.0
    assert summary.share("sad") == 0.5
    assert summary.share("angry") == 0.0  # one read as disgusted, one without a face
    assert summary.outputs("angry") == 2
    assert np.isnan(summary.share("fearful"))  # no output asked for it
    # hits: happy 2, sad 1, surprised 1 = 4 of 7 outputs
    assert summary.overall_share == 4 / 7


def test_identity_distances_of_outputs_only():
    summary = summarize(_synthetic())
    np.testing.assert_array_equal(np.sort(summary.identity), [0.1, 0.2, 0.4, 0.5, 0.65, 0.7])
    assert summary.identity_over_threshold == 2  # 0.65 and 0.7


def test_report_shows_the_matrix_shares_identity_and_sources():
    readings = _synthetic()
    sources = [r for r in readings if r.intended == SOURCE]
    report = format_report(summarize(readings), sources, "header line")
    lines = report.splitlines()
    assert lines[0] == "header line"
    sad_row = next(line for line in lines if line.startswith("sad "))
    # neutral happy sad angry fearful disgusted surprised, no face, outputs, share
    assert sad_row.split()[1:] == ["1", "0", "1", "0", "0", "0", "0", "0", "2", "50%"]
    assert "read as asked overall: 57% of 7 outputs" in report
    assert "max 0.700, median 0.450, 2 of 6 at or over 0.6" in report
    assert "c" in lines[-1] and "neutral 0.94" in lines[-1]


def test_csv_has_a_row_per_reading_failures_included(tmp_path):
    path = tmp_path / "readings.csv"
    write_csv(path, _synthetic())
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 8
    assert rows[0]["intended"] == SOURCE and rows[0]["identity_distance"] == ""
    assert rows[4]["read"] == "sad" and rows[4]["identity_distance"] == "0.7000"
    assert rows[6]["read"] == "" and rows[6]["error"] == "no face"


def test_the_central_face_is_picked():
    image = np.zeros((512, 384, 3), np.uint8)

    def face(x0: float, y0: float, size: float) -> FaceDetection:
        box = np.array([x0, y0, x0 + size, y0 + size], np.float32)
        return FaceDetection(box, np.zeros((6, 2), np.float32), 0.9)

    faces = [face(0, 150, 120), face(110, 170, 160), face(300, 200, 80)]
    assert central_face(faces, image) is faces[1]
    assert central_face([], image) is None


def test_shares_by_what_the_source_reads_as():
    readings = [_reading(SOURCE, "happy", float("nan"), case="smiling")]
    readings += [_reading("sad", "happy", case="smiling")]
    readings += [_reading("happy", "happy", case="smiling")]
    readings += [_reading(SOURCE, "neutral", float("nan"), case="calm")]
    readings += [_reading("sad", "sad", case="calm"), _reading("angry", "sad", case="calm")]
    readings += [Reading("calm", "fearful", np.full(7, np.nan, np.float32), error="no face")]
    shares = shares_by_source(readings)
    assert shares == {"happy": (1, 1, 2), "neutral": (1, 1, 3)}
    report = format_report(summarize(readings), [])
    assert "sources read as neutral (1 faces): 1 of 3 outputs read as asked (33%)" in report


def test_report_lists_the_painted_heads_readings():
    painted = [_reading("angry", "neutral", float("nan"), case="painted")]
    report = format_report(summarize(_synthetic()), [], painted=painted)
    assert report.splitlines()[-1].split() == ["angry", "neutral", "0.94"]
