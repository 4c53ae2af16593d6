"""The base of every settings schema (the run config's sections and ``modeling.ModelConfig``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; types are not coerced (``"1"`` is not an int); NaN, ±inf and empty
    strings are refused; frozen after checks."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        validate_default=True,
        allow_inf_nan=False,  # NaN and ±inf are never a setting (YAML reads .nan and .inf)
        str_min_length=1,  # "" is no path, backbone or device
    )
