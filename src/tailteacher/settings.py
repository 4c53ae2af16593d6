"""The base of every settings schema (the run config's sections and ``modeling.ModelConfig``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.config import JsonDict
from pydantic.fields import FieldInfo


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


#: ``json_schema_extra`` of a setting that changes how a run executes, not what it computes (the
#: device, data-loading workers, logging and checkpoint cadence): it is left out of every config
#: and stage hash (``engine.config_files.result_dump``), so a run started on a CPU resumes on a GPU
#: and a changed log cadence does not retrain anything (D85).
RUN_ONLY: JsonDict = {"run_only": True}


def is_run_only(field: FieldInfo) -> bool:
    """Whether ``field`` was declared with ``json_schema_extra=RUN_ONLY``."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("run_only") is True
