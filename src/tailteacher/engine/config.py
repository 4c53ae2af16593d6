"""The run configuration: typed sections that check themselves (pydantic, unknown keys refused).

Reading YAML, ``--set`` overrides, error messages, saving and hashing are in ``config_io``.
Paths are strings, relative to the working directory; whether a file exists is checked by the
stage that reads it, not here (so a config can be checked on a machine without the data).
Each section is a small model; a stage that needs more adds a section, not keys to another one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..modeling.config import ModelConfig
from ..settings import StrictModel


class DataConfig(StrictModel):
    train_json: str = Field(description="LVIS/COCO json of the labeled training images (after the split)")
    val_json: str = Field(description="LVIS/COCO json the model is evaluated on")
    image_root: str = Field(description="folder the images' file_name are relative to")
    unlabeled_json: str | None = Field(
        default=None, description="json listing the unlabeled images (student)"
    )
    heldout_json: str | None = Field(
        default=None, description="held-out labeled images (the 15%: tuning, CCECE)"
    )
    max_skipped_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="a stage stops when more than this share of the images it read could not be "
        "used (unreadable, or another size than the record); each skipped image is listed",
    )
    batch_size: int = Field(default=2, gt=0, description="images per process per batch")
    workers: int = Field(default=2, ge=0, description="data-loading worker processes per process")
    repeat_factor_threshold: float | None = Field(
        default=0.001,
        gt=0,
        le=1,
        description="t of repeat-factor sampling (LVIS standard); null: plain shuffling",
    )
    image_size: int | None = Field(
        default=None,
        gt=0,
        description="side length images are drawn or resized to by the data pipeline; null: as stored",
    )


class TargetsConfig(StrictModel):
    kind: Literal["onehot", "uniform", "similarity"] = Field(
        default="similarity", description="teacher targets: one-hot, uniform smoothing, or Eq. 2–3"
    )
    eps: float = Field(default=0.1, ge=0, le=1, description="ε of Eq. 3 (and of uniform smoothing)")
    prototypes: str | None = Field(
        default=None,
        description="prototypes.safetensors for kind=similarity (from `tailteacher prototypes`); "
        "null: computed into the run folder before training",
    )
    gamma: float = Field(default=1.5, ge=0, description="γ of Eq. 2: class-frequency modulation")
    temperature: float = Field(
        default=1.0, gt=0, description="temperature on S in Eq. 2 (ours; 1 = the paper)"
    )
    instance_embedding: Literal["crop", "roi"] = Field(
        default="crop",
        description="Eq. 1's B(x): crop = each box cut out, resized to crop_size and run through the "
        "trunk; roi = the trunk's stride-16 map of the whole image pooled in the box (D62)",
    )
    crop_size: int = Field(
        default=224, gt=0, description="side in pixels of an instance crop (instance_embedding: crop)"
    )


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
        default="auto", description="auto: cuda:LOCAL_RANK if any, else cpu"
    )
    checkpoint_every: int = Field(default=1000, gt=0, description="save a checkpoint every this many steps")
    keep_checkpoints: int = Field(default=2, gt=0, description="newest checkpoints kept on disk")
    eval_every: int | None = Field(
        default=None,
        gt=0,
        description="also evaluate on data.val_json every this many steps, logged as val/AP, val/APr, … "
        "(each costs a pass over val: ~20–40 s for demo on 2 CPU cores); null: only at the end",
    )
    log_every: int = Field(default=20, gt=0, description="write metrics every this many steps")
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
    run_dir: str = Field(description="folder of this run: config.yaml, checkpoints, metrics, outputs")
    resume: bool = Field(
        default=False, description="continue from the run folder's latest checkpoint, if any"
    )


class StrongAugmentationConfig(StrictModel):
    """The student's strong view, photometric part (``data.transforms.Photometric``). Defaults are
    Unbiased Teacher's and SoftTeacher's. Hue shifts and grayscale change what an object looks
    like, not only how it is lit: where colour tells classes apart they teach a pseudo-label's class
    on an object of another colour (measured on the benchmark, D61)."""

    brightness: float = Field(default=0.4, ge=0, description="jitter strength b: factor U(1 − b, 1 + b)")
    contrast: float = Field(default=0.4, ge=0, description="jitter strength b: factor U(1 − b, 1 + b)")
    saturation: float = Field(default=0.4, ge=0, description="jitter strength b: factor U(1 − b, 1 + b)")
    hue: float = Field(
        default=0.1, ge=0, le=0.5, description="hue shift U(−hue, hue), fractions of the wheel"
    )
    color_jitter_p: float = Field(default=0.8, ge=0, le=1, description="probability of the colour jitter")
    grayscale_p: float = Field(default=0.2, ge=0, le=1, description="probability of grayscale")
    blur_p: float = Field(default=0.5, ge=0, le=1, description="probability of a Gaussian blur (σ 0.1–2 px)")


class StudentConfig(StrictModel):
    pseudo_labels: Literal["onehot", "soft", "calibrated"] = Field(
        default="calibrated", description="onehot (baseline, τ on the top score), soft, or calibrated (Eq. 5)"
    )
    teacher_checkpoint: str | None = Field(
        default=None,
        description="the trained teacher's weights (model_final.safetensors); `tailteacher run` fills it in",
    )
    delta: str | None = Field(
        default=None, description="delta.safetensors from `tailteacher calibrate` (required by calibrated)"
    )
    lam: float = Field(default=2.0, description="λ of Eq. 5")
    support: Literal["all", "nonzero"] = Field(
        default="all", description="Eq. 5 on the whole row (all) or on the teacher's top-k classes (nonzero)"
    )
    threshold_on: Literal["teacher", "corrected", "foreground"] = Field(
        default="teacher",
        description="box_threshold on the teacher's top class score, the corrected row's max "
        "(calibrated), or the teacher's top-k row sum: how surely the box is an object (D63)",
    )
    box_threshold: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="keep pseudo-boxes whose top score (see threshold_on) ≥ this; null: per mode",
    )
    ignore_threshold: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="teacher boxes scoring in [this, box_threshold) are ignored (no loss), not background",
    )
    renormalize: bool = Field(
        default=False,
        description="divide each pseudo-label row by its sum: a box over τ is surely an object, its "
        "class soft (D61); false: the row's missing mass is background",
    )
    top_k: int | None = Field(default=5, gt=0, description="classes kept per pseudo-box; null: all")
    unlabeled_batch_size: int = Field(default=4, gt=0, description="unlabeled images per process per step")
    unsup_weight: float = Field(default=1.0, ge=0, description="w of loss = supervised + w · unsupervised")
    unsup_box_loss: bool = Field(
        default=True,
        description="train box regression (RPN and cascade) on pseudo-boxes; off: classification only",
    )
    unsup_mask_loss: bool = Field(
        default=True, description="train the mask head on the teacher's thresholded pseudo-masks"
    )
    teacher: Literal["frozen", "ema"] = Field(
        default="frozen", description="frozen teacher, or an EMA of the student"
    )
    teacher_momentum: float = Field(default=0.999, gt=0, lt=1, description="EMA momentum when teacher=ema")
    strong_augmentation: StrongAugmentationConfig = Field(
        default_factory=StrongAugmentationConfig,
        description="photometric ops of the student's strong view (scale jitter 0.5–1.5, flip and "
        "cutout are fixed)",
    )
    max_steps: int | None = Field(
        default=None, gt=0, description="the student's train.max_steps; null: train's"
    )
    lr: float | None = Field(default=None, gt=0, description="the student's train.lr; null: train's")
    warmup_steps: int | None = Field(
        default=None, ge=0, description="the student's train.warmup_steps; null: train's"
    )

    def schedule(self, train: TrainConfig) -> TrainConfig:
        """``train`` with this section's schedule overrides (max_steps, lr, warmup_steps) applied."""
        update: dict[str, object] = {}
        if self.max_steps is not None:
            update.update(max_steps=self.max_steps, epochs=None)
        if self.lr is not None:
            update["lr"] = self.lr
        if self.warmup_steps is not None:
            update["warmup_steps"] = self.warmup_steps
        return train.model_copy(update=update)


class Config(StrictModel):
    """The whole configuration of one training run."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    targets: TargetsConfig = TargetsConfig()
    train: TrainConfig
    run: RunConfig
    student: StudentConfig | None = None

    @model_validator(mode="after")
    def _classes_come_from_the_data(self) -> Config:
        if self.model.num_classes is not None or self.model.class_frequencies is not None:
            raise ValueError(
                "model.num_classes / model.class_frequencies are set from the data's categories; remove them"
            )
        return self
