"""Evaluation: LVIS metrics (AP, APr/APc/APf), detection calibration (Eq. 4, ECE) and plots."""
