"""Bad input → ValueError naming the argument and what was expected."""

import pytest
import torch

from tailteacher import labels as L


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: L.class_prototypes(torch.zeros(3), torch.zeros(3, dtype=torch.long), 2),
            r"embeddings: expected 2 dimensions, got shape \[3\]",
        ),
        (
            lambda: L.class_prototypes(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 2),
            "labels: expected 3 entries",
        ),
        (
            lambda: L.class_prototypes(torch.zeros(2, 2), torch.tensor([0, 2]), 2),
            r"labels: class index 2 out of range \[0, 2\)",
        ),
        (
            lambda: L.class_prototypes(torch.zeros(2, 2), torch.tensor([0.0, 1.0]), 2),
            "labels: expected an integer tensor",
        ),
        (
            lambda: L.class_prototypes(torch.tensor([[float("nan")]]), torch.tensor([0]), 1),
            "embeddings: contains NaN",
        ),
        (
            lambda: L.class_prototypes(torch.zeros(1, 1), torch.tensor([0]), 0),
            "num_classes: expected a positive integer",
        ),
        (
            lambda: L.similarity_smoothing_matrix(torch.ones(3, 2), torch.ones(2), 1.5),
            r"counts: expected shape \[3\]",
        ),
        (
            lambda: L.similarity_smoothing_matrix(torch.ones(3, 2), torch.ones(3), -1.0),
            "gamma: expected a finite number",
        ),
        (
            lambda: L.similarity_smoothing_matrix(torch.ones(3, 2), -torch.ones(3), 1.0),
            "counts: expected finite values",
        ),
        (
            lambda: L.smooth_targets(torch.tensor([0]), torch.eye(2), 1.5),
            "eps: expected a finite number in",
        ),
        (lambda: L.smooth_targets(torch.tensor([5]), torch.eye(2), 0.1), "labels: class index 5"),
        (
            lambda: L.uniform_smooth_targets(torch.tensor([[0]]), 3, 0.1),
            r"labels: expected shape \[N\]",
        ),
        (
            lambda: L.ccece(torch.tensor([0.5, float("nan")]), torch.tensor([1, 0]), torch.tensor([0, 0]), 1),
            r"confidences: expected values in \[0, 1\], found nan",
        ),
        (
            lambda: L.ccece(torch.tensor([1.2]), torch.tensor([1]), torch.tensor([0]), 1),
            r"confidences: expected values in \[0, 1\], found 1.2",
        ),
        (
            lambda: L.ccece(torch.tensor([0.5]), torch.tensor([2]), torch.tensor([0]), 1),
            "correct: expected 0/1 or bool",
        ),
        (
            lambda: L.ccece(torch.tensor([0.5]), torch.tensor([1]), torch.tensor([3]), 2),
            "classes: class index 3",
        ),
        (
            lambda: L.expected_calibration_error(torch.tensor([0.5]), torch.tensor([1]), num_bins=0),
            "num_bins: expected a positive integer",
        ),
        (
            lambda: L.calibrate_soft_labels(torch.rand(2, 3), torch.zeros(2), 1.0),
            r"delta: expected shape \[3\]",
        ),
        (
            lambda: L.calibrate_soft_labels(torch.rand(2, 3), torch.full((3,), 2.0), 1.0),
            r"delta: expected values in \[-1, 1\]",
        ),
        (
            lambda: L.calibrate_soft_labels(torch.rand(2, 3), torch.zeros(3), float("inf")),
            "lam: expected a finite number",
        ),
        (
            lambda: L.soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(3)),
            r"weights: expected shape \[2\]",
        ),
        (
            lambda: L.PrototypeAccumulator(2, 3).update(torch.zeros(1, 4), torch.tensor([0])),
            "embeddings: expected width D=3",
        ),
    ],
)
def test_bad_input_raises_a_named_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_tensor_input_is_named():
    with pytest.raises(ValueError, match=r"embeddings: expected a torch\.Tensor, got list"):
        L.class_prototypes([[0.0]], torch.tensor([0]), 1)  # type: ignore[arg-type]
