"""The run configuration: typed sections that check themselves (pydantic, unknown keys refused).

``data``, ``model`` (``modeling.ModelConfig``), ``targets``, ``train`` and ``run`` (the engine's,
``engine.config``) and ``student``. Reading YAML, ``--set`` overrides and error messages are in
``config_io``; saving and hashing in ``engine.config_files``. Paths are strings, relative to the
working directory; whether a file exists is checked by the stage that reads it, not here (so a
config can be checked on a machine without the data). Each section is a small model; a stage that
needs more adds a section, not keys to another one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from .engine.config import RunConfig, TrainConfig
from .modeling.config import ModelConfig
from .settings import RUN_ONLY, StrictModel


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
    workers: int = Field(
        default=2,
        ge=0,
        description="data-loading worker processes per process (each draw's augmentation is seeded "
        "by its own key, so the count does not change the batches)",
        json_schema_extra=RUN_ONLY,
    )
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
    delta_shrinkage: float = Field(
        default=10.0,
        ge=0,
        description="κ: each class's Δ is pulled toward its frequency group's pooled Δ as "
        "(n Δ + κ Δ_group) / (n + κ), n = its held-out detections (D100); 0: Eq. 4 as measured",
    )
    support: Literal["all", "nonzero"] = Field(
        default="nonzero",
        description="Eq. 5 on the teacher's top-k classes (nonzero, D51) or, literally, on the whole "
        "row (all: λΔ lifts the largest-Δ classes on every box)",
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
        description="keep pseudo-boxes whose top score (see threshold_on) ≥ this; null: 0.5 (D59)",
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
    logit_adjustment: float = Field(
        default=0.0,
        ge=0,
        description="α: each teacher row's classes reweighted by (labeled objects + 1)^-α, its "
        "foreground mass kept, before the pseudo-label rule (post-hoc logit adjustment; D124); 0: off",
    )
    unlabeled_batch_size: int = Field(default=4, gt=0, description="unlabeled images per process per step")
    unsup_weight: float = Field(default=1.0, ge=0, description="w of loss = supervised + w · unsupervised")
    unsup_box_loss: bool = Field(
        default=False,
        description="train box regression (RPN and cascade) on pseudo-boxes; off (D59): classification "
        "and objectness only",
    )
    unsup_mask_loss: bool = Field(
        default=False,
        description="train the mask head on the teacher's thresholded pseudo-masks; off (D59): the "
        "teacher's coarse masks cost mask AP",
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


class MiningConfig(StrictModel):
    """Stage "mine" (the paper's §4.1): pick the student's unlabeled images from a large pool by
    similarity to crops of the labeled instances of chosen classes (``tailteacher.mining``)."""

    pool: str = Field(
        description="the images to mine: a folder (searched recursively), a text file listing image "
        "files (one a line, relative to the list's folder), or an LVIS/COCO json of images; every "
        "file must lie under data.image_root (the student reads them from there)"
    )
    query_groups: list[Literal["r", "c", "f"]] = Field(
        default=["r"],
        min_length=1,
        description="LVIS groups (of data.train_json) whose labeled instances are the queries",
    )
    query_classes: list[str] | None = Field(
        default=None, description="category names to query instead of query_groups; null: the groups'"
    )
    embedder: Literal["backbone", "timm"] = Field(
        default="backbone",
        description="backbone: the detector's pretrained trunk (model.weights), as the prototypes; "
        "timm: timm_model with the weights in timm_checkpoint (DINOv2 in the paper)",
    )
    timm_model: str | None = Field(
        default=None, description="timm model name for embedder=timm, e.g. vit_small_patch14_dinov2"
    )
    timm_checkpoint: str | None = Field(
        default=None,
        description="local weights file (.safetensors, or a torch file read with weights_only) for "
        "embedder=timm",
    )
    image_size: int | None = Field(
        default=None,
        gt=0,
        description="side in pixels that crops and pool images are resized to; null: targets.crop_size",
    )
    k: int = Field(default=64, gt=0, description="nearest pool images retrieved per query crop (paper: 64)")
    index: Literal["auto", "flat", "ivf", "ivfpq"] = Field(
        default="auto",
        description="Faiss index: flat (exact), ivf, ivfpq; auto: flat up to 1M pool images, ivf up to "
        "10M, ivfpq beyond",
    )
    nlist: int | None = Field(
        default=None, gt=0, description="IVF cells; null: about 4·√(pool size), at most pool size / 39"
    )
    nprobe: int = Field(default=32, gt=0, description="IVF cells searched per query")
    pq_m: int = Field(
        default=64, gt=0, description="IVF-PQ sub-quantizers (bytes per vector); must divide the dimension"
    )
    near_duplicate_cosine: float = Field(
        default=0.98,
        gt=0,
        le=1,
        description="two found images whose embeddings have a cosine above this are near-duplicates; "
        "the lower-ranked one is dropped",
    )
    max_images: int | None = Field(
        default=None, gt=0, description="keep at most this many images, by best similarity; null: all found"
    )
    batch_size: int = Field(default=64, gt=0, description="images per embedding batch")
    shard_size: int = Field(
        default=4096, gt=0, description="pool images per cached embedding shard (the unit of resuming)"
    )
    truth_json: str | None = Field(
        default=None,
        description="annotations of the pool (a benchmark's pool_truth.json): the mined images' truth is "
        "written beside the output for measuring only, never for training",
    )

    @model_validator(mode="after")
    def _timm_needs_its_files(self) -> MiningConfig:
        if self.embedder == "timm" and (self.timm_model is None or self.timm_checkpoint is None):
            raise ValueError("mining.embedder=timm needs mining.timm_model and mining.timm_checkpoint")
        return self


class Config(StrictModel):
    """The whole configuration of one training run."""

    data: DataConfig
    model: ModelConfig = ModelConfig()
    targets: TargetsConfig = TargetsConfig()
    train: TrainConfig
    run: RunConfig
    student: StudentConfig | None = None
    mining: MiningConfig | None = None

    @model_serializer(mode="wrap")
    def _no_mining_key_when_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A config without mining dumps and hashes as before the section existed (D78).
        out: dict[str, Any] = handler(self)
        if self.mining is None:
            out.pop("mining", None)
        return out

    @model_validator(mode="after")
    def _classes_come_from_the_data(self) -> Config:
        if self.model.num_classes is not None or self.model.class_frequencies is not None:
            raise ValueError(
                "model.num_classes / model.class_frequencies are set from the data's categories; remove them"
            )
        return self
