"""The engine's settings: ``train`` (optimisation, schedule, device, checkpoints, logging) and
``run`` (the run folder, resume). Any run config that holds these two sections can drive the
engine; tailteacher's own run schema is ``tailteacher.config.Config``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..settings import RUN_ONLY, StrictModel


class TrainConfig(StrictModel):
    optimizer: Literal["adamw", "sgd"] = Field(default="adamw", description="optimizer")
    lr: float = Field(
        default=4e-5, gt=0, description="peak learning rate (reached after warm-up, then cosine)"
    )
    weight_decay: float = Field(
        default=0.05, ge=0, description="weight decay (not on biases and norm layers)"
    )
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum")
    betas: list[float] = Field(default=[0.9, 0.999], min_length=2, max_length=2, description="AdamW betas")
    warmup_steps: int = Field(
        default=1000, ge=0, description="linear warm-up, in optimizer steps (cut to the run's length)"
    )
    warmup_factor: float = Field(default=0.001, ge=0, le=1, description="learning-rate factor at step 0")
    min_lr_factor: float = Field(
        default=0.0, ge=0, le=1, description="learning-rate factor the cosine ends at"
    )
    max_steps: int | None = Field(default=None, gt=0, description="optimizer steps (set this or epochs)")
    epochs: int | None = Field(default=None, gt=0, description="passes over the data (set this or max_steps)")
    grad_clip: float | None = Field(
        default=None, gt=0, description="clip the gradients' global L2 norm; null: off"
    )
    max_nonfinite_steps: int = Field(
        default=3,
        ge=1,
        description="a step whose loss is NaN/inf is skipped (no update) and counted; this many in a "
        "row stop the run with the last checkpoint intact (1: stop at the first)",
    )
    accumulate: int = Field(default=1, ge=1, description="batches per optimizer step (gradient accumulation)")
    amp: bool = Field(default=False, description="bf16 autocast (GPUs with bf16: A100, H100; not V100)")
    seed: int = Field(default=0, ge=0, description="seed of python, numpy, torch and the data order")
    deterministic: bool = Field(default=False, description="deterministic kernels where torch has them")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: cuda:LOCAL_RANK if any, else cpu", json_schema_extra=RUN_ONLY
    )
    checkpoint_every: int = Field(
        default=1000,
        gt=0,
        description="save a checkpoint every this many steps",
        json_schema_extra=RUN_ONLY,
    )
    keep_checkpoints: int = Field(
        default=2, gt=0, description="newest checkpoints kept on disk", json_schema_extra=RUN_ONLY
    )
    eval_every: int | None = Field(
        default=None,
        gt=0,
        description="also evaluate on data.val_json every this many steps, logged as val/AP, val/APr, … "
        "(each costs a pass over val: ~20–40 s for demo on 2 CPU cores); null: only at the end",
    )
    log_every: int = Field(
        default=20, gt=0, description="write metrics every this many steps", json_schema_extra=RUN_ONLY
    )
    ema_momentum: float | None = Field(
        default=None, gt=0, lt=1, description="keep an EMA of the weights with this momentum; null: off"
    )

    @model_validator(mode="after")
    def _length(self) -> TrainConfig:
        if (self.max_steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of max_steps and epochs (the other null)")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas}")
        return self


class RunConfig(StrictModel):
    run_dir: str = Field(
        description="folder of this run: config.yaml, checkpoints, metrics, outputs",
        json_schema_extra=RUN_ONLY,
    )
    resume: bool = Field(
        default=False,
        description="continue from the run folder's latest checkpoint, if any",
        json_schema_extra=RUN_ONLY,
    )
