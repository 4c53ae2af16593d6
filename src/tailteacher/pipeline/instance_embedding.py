"""Eq. 1's B(x): an embedding of each labeled instance by the backbone's trunk, two ways
(``targets.instance_embedding``, docs/decisions.md D62):

    crop  the box (plus 10 % context each side) cut out of the image, resized to crop_size², run
          through the trunk and averaged over its deepest map (``crop_instances`` + the backbone's
          ``embed_crops``): the object at the resolution the trunk was pretrained at;
    roi   the trunk run once on the whole image, its stride-16 map averaged inside the box
          (``pool_instances``): cheaper, but a 20-px object is one or two cells of context.

Shapes:
    B  images in a batch     D  feature channels     h, w  feature map size
    N  instances
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.ops import roi_align

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
