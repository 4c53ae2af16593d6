"""Twenty optimisation steps on a tiny synthetic set make the cascade's total loss fall."""

from __future__ import annotations

import torch

from tailteacher.modeling import ModelConfig, build_model

SIZE = 64
COLOURS = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.9]])  # class = colour


def synthetic_set(n: int, seed: int) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Noise images with 1–3 coloured squares or discs; the class is the colour."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    items = []
    for _ in range(n):
        image = torch.rand(3, SIZE, SIZE, generator=g) * 0.3
        boxes, labels, masks = [], [], []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            side = int(torch.randint(12, 28, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, SIZE - side, (2,), generator=g))
            label = int(torch.randint(0, 3, (1,), generator=g))
            if bool(torch.rand(1, generator=g) < 0.5):
                mask = (xs >= x0) & (xs < x0 + side) & (ys >= y0) & (ys < y0 + side)
            else:
                r = side / 2
                mask = (xs + 0.5 - x0 - r) ** 2 + (ys + 0.5 - y0 - r) ** 2 <= r * r
            image[:, mask] = COLOURS[label][:, None]
            boxes.append([x0, y0, x0 + side, y0 + side])
            labels.append(label)
            masks.append(mask.to(torch.uint8))
        items.append(
            (
                image,
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32),
                    "labels": torch.tensor(labels),
                    "masks": torch.stack(masks),
                },
            )
        )
    return items


def test_total_loss_falls_on_a_tiny_synthetic_set() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        num_classes=3,
        image_min_size=SIZE,
        image_max_size=SIZE,
        fpn_channels=32,
        box_head_dim=64,
        mask_head_channels=16,
        anchor_sizes=(8, 16, 32, 64, 128),
        roi_batch_size_per_image=64,
        proposals_train=150,
    )
    model = build_model(cfg)
    model.train()
    data = synthetic_set(8, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-4)
    totals = []
    for step in range(20):
        chunk = [data[(4 * step + i) % len(data)] for i in range(4)]
        losses = model([c[0] for c in chunk], [c[1] for c in chunk])
        assert isinstance(losses, dict)
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        totals.append(float(total.detach()))
    first, last = sum(totals[:5]) / 5, sum(totals[-5:]) / 5
    assert last < 0.7 * first, totals
