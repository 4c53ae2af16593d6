"""The one test of "is this a finite number", shared by the json readers and the config checks."""

from __future__ import annotations

import math
from typing import TypeGuard

import numpy as np


def is_finite_number(v: object) -> TypeGuard[int | float]:
    """A finite int or float, python or numpy scalar: not a bool, not NaN or ±inf, not an int
    beyond float range (which ``math.isfinite`` cannot take)."""
    if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False
