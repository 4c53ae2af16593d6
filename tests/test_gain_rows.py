"""The run table's paired rows: student − control and student − teacher (D111)."""

from __future__ import annotations

import pytest

from tailteacher.report.markdown import GAIN, TEACHER_GAIN, gain_rows, gain_sentence


def _row(ap: float, apr: float | None, ece: float | None) -> dict[str, float | None]:
    return {"AP": ap, "APr": apr, "APc": 50.0, "APf": 60.0, "ECE": ece}


def test_the_student_is_differenced_with_the_control_and_the_teacher():
    rows = {
        "teacher": _row(54.0, 30.0, 0.09),
        "control (labeled only)": _row(53.0, 27.0, None),
        "student (calibrated)": _row(54.5, 28.0, 0.08),
    }
    out = gain_rows(rows)
    assert out[GAIN] == {"AP": 1.5, "APr": 1.0, "APc": 0.0, "APf": 0.0, "ECE": None}
    assert out[TEACHER_GAIN] == {"AP": 0.5, "APr": -2.0, "APc": 0.0, "APf": 0.0, "ECE": pytest.approx(-0.01)}
    assert list(rows) == ["teacher", "control (labeled only)", "student (calibrated)"]  # not mutated
    assert gain_sentence(out) == (
        "student − control (same teacher, same steps, labeled images only vs + pseudo-labels): "
        "AP +1.5, APr +1.0, APc +0.0, APf +0.0; student − teacher: AP +0.5, APr -2.0, APc +0.0, "
        "APf +0.0, ECE -0.010"
    )


def test_no_student_or_two_students_add_no_rows_and_no_control_no_sentence():
    teacher_only = {"teacher": _row(54.0, 30.0, 0.09)}
    assert gain_rows(teacher_only) == teacher_only
    two = {**teacher_only, "student (soft)": _row(1, 1, 0.1), "student (onehot)": _row(2, 2, 0.1)}
    assert gain_rows(two) == two
    no_control = gain_rows({**teacher_only, "student (soft)": _row(55.0, 31.0, 0.08)})
    assert GAIN not in no_control and no_control[TEACHER_GAIN]["AP"] == 1.0
    assert gain_sentence(no_control) is None
