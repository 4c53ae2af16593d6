"""Stage "prototypes" (Eq. 1–2): an embedding of every labeled instance by the pretrained trunk,
averaged per class, then the smoothing matrix S'.

Two ways to embed an instance (``targets.instance_embedding``, docs/decisions.md D62):
    crop  the box (plus 10 % context each side) cut out of the image, resized to crop_size², run
          through the trunk and averaged over its deepest map (``crop_instances`` + the backbone's
          ``embed_crops``): the object at the resolution the trunk was pretrained at;
    roi   the trunk run once on the whole image, its stride-16 map averaged inside the box
          (``pool_instances``): cheaper, but a 20-px object is one or two cells of context.

Shapes:
    B  images in a batch     D  feature channels     h, w  feature map size
    N  instances             C  classes

Writes into the run folder: ``prototypes.safetensors`` (prototypes [C, D] float32, counts [C]
int64, similarity S [C, C], smoothing S' [C, C]), ``nearest_classes.md`` (each class's nearest
classes by cosine, so a user can see whether the similarities make sense) and
``prototypes.json`` (the settings and summary figures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torchvision.ops import roi_align

from ..labels import (
    PrototypeAccumulator,
    cosine_similarity_matrix,
    row_entropy,
    similarity_smoothing_matrix,
)

# images [B, 3, H, W] float in [0, 1] -> (features [B, D, h, w], stride in input pixels)
FeatureFn = Callable[[torch.Tensor], tuple[torch.Tensor, float]]
# crops [N, 3, s, s] float in [0, 1] -> embeddings [N, D]
CropFn = Callable[[torch.Tensor], torch.Tensor]
# (B images [3, H_b, W_b] in [0, 1], B boxes [N_b, 4] XYXY pixels) -> [sum N_b, D], in box order
InstanceEmbedFn = Callable[[Sequence[torch.Tensor], Sequence[torch.Tensor]], torch.Tensor]

#: Context added around a box on each side before cropping, as a fraction of its width/height.
CROP_CONTEXT = 0.1


def pad_batch(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """[B, 3, H, W] with each image at the top-left, zero-padded to the largest size."""
    h = max(int(im.shape[-2]) for im in images)
    w = max(int(im.shape[-1]) for im in images)
    out = images[0].new_zeros(len(images), 3, h, w)
    for k, im in enumerate(images):
        out[k, :, : im.shape[-2], : im.shape[-1]] = im
    return out


def pool_instances(
    features: torch.Tensor, boxes: Sequence[torch.Tensor], stride: float, output_size: int = 7
) -> torch.Tensor:
    """Mean of the RoIAligned features inside each box.

    Args:
        features: [B, D, h, w] feature map of the batch.
        boxes: B tensors [N_b, 4], XYXY in input pixels.
        stride: input pixels per feature cell.

    Returns:
        [sum N_b, D] one embedding per instance, in the order of ``boxes``.
    """
    rois = [b.to(device=features.device, dtype=features.dtype) for b in boxes]
    if sum(len(b) for b in rois) == 0:
        return features.new_zeros(0, features.shape[1])
    pooled: torch.Tensor = roi_align(
        features, rois, output_size=output_size, spatial_scale=1.0 / stride, aligned=True
    )
    return pooled.mean(dim=(2, 3))


def crop_instances(
    images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], size: int, context: float = CROP_CONTEXT
) -> torch.Tensor:
    """Every box cut out of its image with ``context`` × its width/height added on each side
    (clipped to the image), resized bilinearly to ``size`` × ``size`` (RoIAlign on the pixels,
    averaging several samples per output pixel when the box is larger than the crop).

    Args:
        images: B tensors [3, H_b, W_b] float.
        boxes: B tensors [N_b, 4], XYXY in the image's pixels.
        size: the crop's side in pixels.
        context: ≥ 0.

    Returns:
        [sum N_b, 3, size, size] in the order of ``boxes``.
    """
    crops = []
    for image, b in zip(images, boxes, strict=True):
        if len(b) == 0:
            continue
        b = b.to(device=image.device, dtype=image.dtype)
        pad = (b[:, 2:] - b[:, :2]).repeat(1, 2) * torch.tensor([-1.0, -1.0, 1.0, 1.0]).to(b) * context
        h, w = int(image.shape[-2]), int(image.shape[-1])
        limit = torch.tensor([w, h, w, h]).to(b)
        grown = torch.minimum((b + pad).clamp(min=0), limit)
        crops.append(roi_align(image[None], [grown], output_size=size, spatial_scale=1.0, aligned=True))
    if not crops:
        return images[0].new_zeros(0, 3, size, size) if len(images) else torch.zeros(0, 3, size, size)
    return torch.cat(crops)


def roi_embedder(feature_fn: FeatureFn) -> InstanceEmbedFn:
    """Embed instances by pooling ``feature_fn``'s map of the padded batch inside each box."""

    def embed(images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        features, stride = feature_fn(pad_batch(images))
        return pool_instances(features.float(), boxes, stride)

    return embed


def crop_embedder(crop_fn: CropFn, size: int, context: float = CROP_CONTEXT) -> InstanceEmbedFn:
    """Embed instances as ``crop_fn`` of their crops (``crop_instances``)."""

    def embed(images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        crops = crop_instances(images, boxes, size, context)
        if len(crops) == 0:
            return crop_fn(crops.new_zeros(1, 3, size, size)).float()[:0]
        return crop_fn(crops).float()

    return embed


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
        raise ValueError("no images to compute prototypes from")
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

    from ..io import atomic_write_bytes

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
        raise ValueError(f"{path}: not a readable prototypes file ({err})") from None
    missing = {"prototypes", "counts"} - set(tensors)
    if missing:
        raise ValueError(f"{path}: missing tensors {sorted(missing)} (written by `tailteacher prototypes`?)")
    return tensors
