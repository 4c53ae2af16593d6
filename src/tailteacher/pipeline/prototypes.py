"""Stage "prototypes" (Eq. 1–2): an embedding of every labeled instance by the pretrained trunk
(``instance_embedding``: its crop, or its box pooled from the image's map), averaged per class,
then the smoothing matrix S'.

Shapes:
    B  images in a batch     D  feature channels
    N  instances             C  classes

Writes into the run folder: ``prototypes.safetensors`` (prototypes [C, D] float32, counts [C]
int64, similarity S [C, C], smoothing S' [C, C]), ``nearest_classes.md`` (each class's nearest
classes by cosine, so a user can see whether the similarities make sense) and
``prototypes.json`` (the settings and summary figures).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from ..config import Config
from ..data.dataset import LvisDataset, Sample, Skipped
from ..data.skips import check_skipped
from ..engine import resolve_device
from ..engine.distributed import all_gather_objects, init_distributed
from ..engine.main_rank import on_main
from ..engine.seed import preserved_rng, seed_everything
from ..errors import InputError
from ..io import atomic_write_bytes, atomic_write_json
from ..labels import (
    PrototypeAccumulator,
    cosine_similarity_matrix,
    row_entropy,
    similarity_smoothing_matrix,
)
from .data import images_of, load_train_data
from .detector import build_detector, load_detector_weights
from .instance_embedding import InstanceEmbedFn, crop_embedder, roi_embedder


def _prototype_batches(
    dataset: LvisDataset, batch_size: int, device: torch.device, skipped: list[Skipped]
) -> Iterator[tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]]:
    """(images, boxes) on ``device``, labels on the CPU (the accumulator's device); the images that
    could not be read go to ``skipped``."""
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        skipped += [s for s in items if isinstance(s, Skipped)]
        samples = [s for s in items if isinstance(s, Sample)]
        if samples:
            yield (
                images_of(samples, device),
                [s.boxes.as_subclass(torch.Tensor).to(device) for s in samples],
                [s.labels for s in samples],
            )


def compute_prototypes(config: Config, checkpoint: str | None = None, progress: bool = True) -> Path:
    """Eq. 1–2 from the detector's backbone trunk (its ``model.weights``, or a trained detector's
    ``checkpoint``) — not the random-init pyramid on top — for every labeled instance, as
    ``targets.instance_embedding`` says: its crop through the trunk, or the trunk's stride-16 map
    (ResNet C4, the ViT's last block) pooled inside its box.
    Writes prototypes.safetensors, nearest_classes.md and prototypes.json into the run folder.
    Under torchrun every rank calls it: each embeds every N-th image, the sums are reduced, and
    rank 0 writes; every rank returns the path."""
    data = load_train_data(config)
    # A random-init trunk's prototypes depend on its initialisation: seed it from train.seed so
    # that the same config gives the same prototypes (and the same run) every time.
    with preserved_rng():
        seed_everything(config.train.seed)
        model = build_detector(config, data)
    if checkpoint is not None:
        load_detector_weights(model, checkpoint)
    # On train.device; the prototypes (and S') come back to the CPU, where TargetBuilder uses them.
    dist = init_distributed()  # torchrun's process group, if any (a no-op when joined already)
    device = resolve_device(config.train, dist)
    backbone = model.backbone.to(device).eval()
    mean = torch.tensor(backbone.image_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.image_std, device=device).view(1, 3, 1, 1)

    def features(images: torch.Tensor) -> tuple[torch.Tensor, float]:
        return backbone.embed((images - mean) / std)

    def crop_features(crops: torch.Tensor) -> torch.Tensor:
        return backbone.embed_crops((crops - mean) / std)

    t = config.targets
    embed = (
        crop_embedder(crop_features, t.crop_size)
        if t.instance_embedding == "crop"
        else roi_embedder(features)
    )
    t0 = time.perf_counter()
    dataset = LvisDataset(
        data,
        sorted(data.images)[dist.rank :: dist.world_size],  # this rank's share
    )
    skipped: list[Skipped] = []
    batches = _prototype_batches(dataset, config.data.batch_size, device, skipped)
    acc = accumulate_prototypes(batches, embed, data.num_classes)
    # each rank skipped its own images; all check the whole list, so all agree
    skipped = [s for part in all_gather_objects(skipped) for s in part]
    skips = check_skipped(skipped, len(data.images), config.data.max_skipped_fraction, config.data.train_json)
    prototypes, counts = (v.cpu() for v in acc.compute())
    sim, smoothing, entropy = smoothing_from_prototypes(prototypes, counts, t.gamma, t.temperature)
    run_dir = Path(config.run.run_dir)
    names = [str(c.get("name", c["id"])) for c in data.categories]
    summary = {
        "source": checkpoint or config.model.weights or "random init (no pretrained backbone)",
        "instance_embedding": t.instance_embedding,
        "crop_size": t.crop_size if t.instance_embedding == "crop" else None,
        "instances": int(counts.sum()),
        "classes_without_instances": int((counts == 0).sum()),
        "skipped_images": skips,
        "gamma": t.gamma,
        "temperature": t.temperature,
        "smoothing_entropy_over_log_C": entropy,
        "seconds": round(time.perf_counter() - t0, 2),
    }

    def write() -> Path:  # rank 0 (the prototypes are reduced: every rank holds the same)
        path = save_prototypes(run_dir, prototypes, counts, sim, smoothing)
        atomic_write_bytes(run_dir / "nearest_classes.md", nearest_classes_table(sim, names).encode())
        atomic_write_json(run_dir / "prototypes.json", summary, indent=2)
        return path

    path = on_main(write)
    if progress and dist.is_main:
        print(
            f"prototypes: {summary['instances']} instances, {data.num_classes} classes "
            f"({summary['classes_without_instances']} without instances), S' entropy/log C "
            f"{entropy:.4f}, {summary['seconds']} s -> {path}"
            + (f"; {skips['count']} images skipped (listed in prototypes.json)" if skips["count"] else "")
        )
    return path


@torch.no_grad()
def accumulate_prototypes(
    batches: Iterable[tuple[Sequence[torch.Tensor], Sequence[torch.Tensor], Sequence[torch.Tensor]]],
    embed_fn: InstanceEmbedFn,
    num_classes: int,
) -> PrototypeAccumulator:
    """Stream (images, boxes, labels) batches through ``embed_fn`` into an accumulator.

    Each batch is B images [3, H, W] float in [0, 1], B box tensors [N_b, 4] XYXY, and B label
    tensors [N_b] (contiguous classes). The accumulator sits on the embeddings' device (nccl
    reduces CUDA tensors only) and is reduced across ranks before return.
    """
    acc: PrototypeAccumulator | None = None
    for images, boxes, labels in batches:
        emb = embed_fn(images, boxes)
        if acc is None:
            acc = PrototypeAccumulator(num_classes, int(emb.shape[1]), device=emb.device)
        acc.update(emb, torch.cat([lab.reshape(-1) for lab in labels]))
    if acc is None:
        raise InputError("no images to compute prototypes from")
    return acc.all_reduce()


def nearest_classes_table(similarity: torch.Tensor, names: Sequence[str], k: int = 5) -> str:
    """A markdown table: each class and its k nearest other classes by cosine similarity."""
    c = similarity.shape[0]
    masked = similarity.clone().fill_diagonal_(-math.inf)
    top = masked.topk(min(k, c - 1), dim=1) if c > 1 else None
    lines = ["| class | nearest classes (cosine) |", "|---|---|"]
    for i in range(c):
        near = ""
        if top is not None:
            near = ", ".join(
                f"{names[j]} ({v:.3f})"
                for v, j in zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True)
            )
        lines.append(f"| {names[i]} | {near} |")
    return "\n".join(lines) + "\n"


def smoothing_from_prototypes(
    prototypes: torch.Tensor, counts: torch.Tensor, gamma: float, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(S [C, C], S' [C, C], mean row entropy of S' / log C)."""
    sim = cosine_similarity_matrix(prototypes)
    smoothing = similarity_smoothing_matrix(prototypes, counts, gamma, temperature=temperature)
    c = prototypes.shape[0]
    ratio = float(row_entropy(smoothing).mean() / math.log(c)) if c > 1 else 0.0
    return sim, smoothing, ratio


def save_prototypes(
    run_dir: Path,
    prototypes: torch.Tensor,
    counts: torch.Tensor,
    similarity: torch.Tensor,
    smoothing: torch.Tensor,
) -> Path:
    """Write ``prototypes.safetensors`` atomically; returns its path."""
    from safetensors.torch import save

    path = run_dir / "prototypes.safetensors"
    tensors = {
        "prototypes": prototypes.float().contiguous(),
        "counts": counts.long().contiguous(),
        "similarity": similarity.float().contiguous(),
        "smoothing": smoothing.float().contiguous(),
    }
    atomic_write_bytes(path, save(tensors))
    return path


def load_prototypes(path: Path) -> dict[str, torch.Tensor]:
    """The tensors written by ``save_prototypes`` (safetensors: no code runs on load)."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # SafetensorError is no OSError/ValueError: name the file instead
        raise InputError(f"{path}: not a readable prototypes file ({err})") from None
    missing = {"prototypes", "counts"} - set(tensors)
    if missing:
        raise InputError(f"{path}: missing tensors {sorted(missing)} (written by `tailteacher prototypes`?)")
    return tensors
