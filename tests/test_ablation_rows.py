"""The student configs of the ablation's rows (`pipeline.ablation.student_row_config`)."""

from __future__ import annotations

import pytest

from tailteacher.config import StudentConfig
from tailteacher.pipeline.ablation import CONTROL_ROW, STUDENT_ROWS, TEACHER_ROWS, student_row_config

ROWS = {r.key: r for r in STUDENT_ROWS}


@pytest.mark.parametrize("shipped", ["all", "nonzero"])
def test_the_literal_and_the_top_k_eq5_rows_differ_whatever_the_config_ships(shipped):
    base = StudentConfig(pseudo_labels="calibrated", support=shipped, unsup_weight=1.5, max_steps=7)
    literal = student_row_config(base, ROWS["student_calibrated"])
    top_k = student_row_config(base, ROWS["student_calibrated_topk"])
    assert (literal.pseudo_labels, literal.support) == ("calibrated", "all")
    assert (top_k.pseudo_labels, top_k.support) == ("calibrated", "nonzero")
    # Everything the row does not set is the config's.
    assert literal.model_copy(update={"support": shipped}) == base


def test_soft_and_onehot_rows_keep_the_config_but_their_pseudo_labels():
    base = StudentConfig(pseudo_labels="calibrated", support="nonzero", box_threshold=0.4)
    assert student_row_config(base, ROWS["student_soft"]) == base.model_copy(update={"pseudo_labels": "soft"})
    onehot = student_row_config(base, ROWS["student_onehot"])
    assert onehot == base.model_copy(update={"pseudo_labels": "onehot"})


def test_the_control_row_is_the_config_at_w_0_with_the_same_schedule():
    base = StudentConfig(pseudo_labels="calibrated", max_steps=480, lr=5e-4, warmup_steps=20)
    control = student_row_config(base, ROWS[CONTROL_ROW])
    assert control.unsup_weight == 0.0
    assert (control.max_steps, control.lr, control.warmup_steps) == (480, 5e-4, 20)
    assert control.unlabeled_batch_size == base.unlabeled_batch_size


def test_a_teacher_row_is_refused():
    with pytest.raises(ValueError, match="teacher row"):
        student_row_config(StudentConfig(), TEACHER_ROWS[0])
