"""Mask pasting: ours (one grid_sample per chunk) vs torchvision's per-detection paste, CPU or GPU.

    python benchmarks/bench_paste.py [--device cuda]

Prints the median of 5 runs per case and the ratio torchvision / ours (measured in the same run).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from tailteacher.modeling.paste import paste_masks


def _time(fn: Callable[[], object], device: torch.device) -> float:
    times = []
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    device = torch.device(parser.parse_args().device)
    g = torch.Generator().manual_seed(0)
    print(f"{'image':>10} {'masks':>6} {'torchvision s':>14} {'ours s':>8} {'ratio':>6}")
    for (h, w), n in (((96, 96), 100), ((480, 640), 100), ((800, 1333), 300)):
        masks = torch.rand(n, 1, 28, 28, generator=g).to(device)
        xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.7, h * 0.7])
        wh = (0.05 + torch.rand(n, 2, generator=g) * 0.25) * torch.tensor([w, h])
        boxes = torch.cat([xy, xy + wh], dim=1).to(device)
        size = (h, w)
        theirs = _time(partial(paste_masks_in_image, masks, boxes, size), device)
        ours = _time(partial(paste_masks, masks, boxes, size), device)
        print(f"{h}x{w:>6} {n:>6} {theirs:>14.4f} {ours:>8.4f} {theirs / ours:>6.1f}")


if __name__ == "__main__":
    main()
