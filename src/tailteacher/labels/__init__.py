"""The paper's label machinery (Eq. 1–5), as pure functions of torch tensors.

Import this into any detector: nothing here depends on a model or a data format.

    Eq. 1  class_prototypes, PrototypeAccumulator
    Eq. 2  similarity_smoothing_matrix
    Eq. 3  smooth_targets (uniform baseline: uniform_smooth_targets)
    Eq. 4  ccece; with expected_calibration_error, reliability_bins, CalibrationAccumulator;
           shrink_ccece for classes with few samples (D100)
    Eq. 5  calibrate_soft_labels
    ours   labeled_count_weights, reweight_rows: post-hoc logit adjustment of the teacher's rows
           by the labeled class counts (Menon et al. 2021; D124)
    loss   soft_cross_entropy (softmax head), soft_binary_cross_entropy (sigmoid/federated head)
"""

from .ccece import (
    CalibrationAccumulator,
    ReliabilityBins,
    ccece,
    expected_calibration_error,
    reliability_bins,
    shrink_ccece,
)
from .class_prototypes import PrototypeAccumulator, class_prototypes
from .correction import calibrate_soft_labels
from .logit_adjustment import labeled_count_weights, reweight_rows
from .losses import soft_binary_cross_entropy, soft_cross_entropy
from .smoothing import (
    cosine_similarity_matrix,
    row_entropy,
    similarity_smoothing_matrix,
    smooth_targets,
    uniform_smooth_targets,
)

__all__ = [
    "CalibrationAccumulator",
    "PrototypeAccumulator",
    "ReliabilityBins",
    "calibrate_soft_labels",
    "ccece",
    "class_prototypes",
    "cosine_similarity_matrix",
    "expected_calibration_error",
    "labeled_count_weights",
    "reliability_bins",
    "reweight_rows",
    "row_entropy",
    "shrink_ccece",
    "similarity_smoothing_matrix",
    "smooth_targets",
    "soft_binary_cross_entropy",
    "soft_cross_entropy",
    "uniform_smooth_targets",
]
