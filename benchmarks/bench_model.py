"""The cascade beside torchvision's stock Mask R-CNN on CPU: training and inference images/s, peak RSS.

    python benchmarks/bench_model.py             # the reported run, ~5 min on 2 cores
    python benchmarks/bench_model.py --quick     # a smoke run
    python benchmarks/bench_model.py --profile   # also: where a training step's time goes

Both models: ResNet-18 FPN from random init (BatchNorm), 64-channel FPN, 2×FC-256 box head(s),
2×conv-64 mask head, the same RPN and anchors, 96 px images, batch 8, 20 classes, 1–4 objects
per image, 300 detections per image at score > 1e-4 at inference. The peer gets the same small
heads passed in. Timings are interleaved (cascade, peer, cascade, …) so that another process on
the machine slows both alike; the ratios are the figures to read. A training step is forward,
backward and an SGD step with learning rate 0, so that the workload (RPN proposals, foreground
RoIs) stays that of the random init and is the same for every timed step and for soft vs one-hot
targets. Peak RSS is measured in a fresh process per model (a few training steps each).
Prints one table.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign

from tailteacher.labels import uniform_smooth_targets
from tailteacher.modeling import ModelConfig, build_model, resnet_fpn

CLASSES = 20
SIZE = 96
BATCH = 8
CFG = ModelConfig(
    num_classes=CLASSES, image_min_size=SIZE, image_max_size=SIZE, anchor_sizes=(16, 32, 64, 128, 256)
)

Batch = tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]


def synthetic_batches(count: int, seed: int = 0) -> list[Batch]:
    """Noise images with 1–4 coloured squares or discs each."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    batches = []
    for _ in range(count):
        images, targets = [], []
        for _ in range(BATCH):
            image = torch.rand(3, SIZE, SIZE, generator=g) * 0.4
            boxes, labels, masks = [], [], []
            for _ in range(int(torch.randint(1, 5, (1,), generator=g))):
                side = int(torch.randint(12, 48, (1,), generator=g))
                x0, y0 = (int(v) for v in torch.randint(0, SIZE - side, (2,), generator=g))
                if bool(torch.rand(1, generator=g) < 0.5):
                    mask = (xs >= x0) & (xs < x0 + side) & (ys >= y0) & (ys < y0 + side)
                else:
                    r = side / 2
                    mask = (xs + 0.5 - x0 - r) ** 2 + (ys + 0.5 - y0 - r) ** 2 <= r * r
                image[:, mask] = torch.rand(3, 1, generator=g)
                boxes.append([x0, y0, x0 + side, y0 + side])
                labels.append(int(torch.randint(0, CLASSES, (1,), generator=g)))
                masks.append(mask.to(torch.uint8))
            images.append(image)
            targets.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32),
                    "labels": torch.tensor(labels),
                    "masks": torch.stack(masks),
                }
            )
        batches.append((images, targets))
    return batches


def stock_mask_rcnn(rois_per_image: int) -> MaskRCNN:
    """torchvision's MaskRCNN with the cascade's backbone, RPN, input size and head widths."""
    c, f, d = CFG.num_classes, CFG.fpn_channels, CFG.box_head_dim
    anchors = AnchorGenerator(tuple((s,) for s in CFG.anchor_sizes), ((0.5, 1.0, 2.0),) * 5)
    return MaskRCNN(
        resnet_fpn("resnet18", out_channels=f, frozen_norm=False),
        num_classes=None,
        min_size=SIZE,
        max_size=SIZE,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(f, 3),
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 7, 2),
        box_head=TwoMLPHead(f * 49, d),
        box_predictor=FastRCNNPredictor(d, c + 1),
        box_score_thresh=CFG.score_threshold,
        box_nms_thresh=CFG.nms_threshold,
        box_detections_per_img=CFG.detections_per_image,
        box_batch_size_per_image=rois_per_image,
        mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], 14, 2),
        mask_head=MaskRCNNHeads(f, [CFG.mask_head_channels] * CFG.mask_head_convs, 1),
        mask_predictor=MaskRCNNPredictor(CFG.mask_head_channels, CFG.mask_head_channels, c + 1),
    )


def one_based(batch: Batch) -> Batch:
    """torchvision's labels count background as 0."""
    images, targets = batch
    return images, [dict(t, labels=t["labels"] + 1) for t in targets]


def smoothed(batch: Batch) -> Batch:
    images, targets = batch
    return images, [dict(t, class_targets=uniform_smooth_targets(t["labels"], CLASSES, 0.1)) for t in targets]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> Callable[[Batch], None]:
    def step(batch: Batch) -> None:
        losses = model(*batch)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()

    return step


def make(which: str, rois_per_image: int = CFG.roi_batch_size_per_image) -> nn.Module:
    torch.manual_seed(0)
    if which == "cascade":
        return build_model(replace(CFG, roi_batch_size_per_image=rois_per_image))
    return stock_mask_rcnn(rois_per_image)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the best and the median wall time, and the median CPU time of this process."""

    best: float
    median: float
    cpu: float


def interleaved(
    fns: dict[str, Callable[[Batch], None]], inputs: dict[str, list[Batch]], rounds: int
) -> dict[str, Timing]:
    """Time each fn, alternating between them round by round (after two warm-up calls each).

    Another process slows the wall time of whichever call it overlaps: the best of the rounds is
    the least disturbed, and CPU time (``time.process_time``, both threads) is mostly immune.
    """
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for name, fn in fns.items():  # warm-up: allocator, thread pool, lazy init
        for b in inputs[name][:2]:
            fn(b)
    for r in range(rounds):
        for name, fn in fns.items():
            b = inputs[name][r % len(inputs[name])]
            c0, t0 = time.process_time(), time.perf_counter()
            fn(b)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {
        k: Timing(best=min(wall[k]), median=statistics.median(wall[k]), cpu=statistics.median(cpu[k]))
        for k in fns
    }


def _peak_rss_child(which: str, steps: int, queue: mp.Queue) -> None:
    model = make(which)
    model.train()
    step = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9))
    batches = synthetic_batches(2)
    for i in range(steps):
        b = batches[i % 2]
        step(b if which == "cascade" else one_based(b))
    # VmHWM: this process's own high-water mark (ru_maxrss can carry the parent's over fork/exec).
    with open("/proc/self/status") as f:
        hwm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    queue.put(hwm_kib / 1024)


def peak_rss_mib(which: str, steps: int) -> float:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(which, steps, queue))
    proc.start()
    peak = float(queue.get())
    proc.join()
    return peak


def profile_step(model: nn.Module, batch: Batch) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    step = train_step(model, optimizer)
    step(batch)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step(batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def compare_training(rois_per_image: int, batches: list[Batch], rounds: int) -> dict[str, Timing]:
    """Training steps of the cascade and the peer, interleaved."""
    steps = {}
    for name in ("cascade", "peer"):
        model = make(name, rois_per_image)
        model.train()
        steps[name] = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9))
    return interleaved(steps, {"cascade": batches, "peer": [one_based(b) for b in batches]}, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (few rounds)")
    parser.add_argument("--rounds", type=int, default=10, help="timed steps per case")
    parser.add_argument("--profile", action="store_true", help="print the top ops of a training step")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    rss_steps = 2 if args.quick else 4
    # Peak RSS first, in fresh processes, before this one grows.
    rss = {name: peak_rss_mib(name, rss_steps) for name in ("cascade", "peer")}
    batches = synthetic_batches(4)

    train = compare_training(CFG.roi_batch_size_per_image, batches, rounds)
    train_128 = compare_training(128, batches, rounds)

    cascade = make("cascade")
    cascade.train()
    step = train_step(cascade, torch.optim.SGD(cascade.parameters(), lr=0.0, momentum=0.9))
    soft = interleaved(
        {"one-hot": step, "soft": step},
        {"one-hot": batches, "soft": [smoothed(b) for b in batches]},
        rounds,
    )

    models = {"cascade": cascade.eval(), "peer": make("peer").eval()}

    def infer(name: str) -> Callable[[Batch], None]:
        def run(batch: Batch) -> None:
            with torch.no_grad():
                models[name](batch[0])

        return run

    inference = interleaved(
        {"cascade": infer("cascade"), "peer": infer("peer")}, {"cascade": batches, "peer": batches}, rounds
    )

    print(
        f"\n# bench_model: torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()}; batch {BATCH} × {SIZE} px, {CLASSES} classes, ResNet-18 FPN-64, "
        f"random init; {rounds} interleaved rounds\n"
    )
    rows: list[tuple[str, float, float]] = []
    for label, t in (("512", train), ("128", train_128)):
        c, p = t["cascade"], t["peer"]
        rows += [
            (f"train images/s, best ({label} RoIs/image)", BATCH / c.best, BATCH / p.best),
            (f"train images/s, median ({label} RoIs/image)", BATCH / c.median, BATCH / p.median),
            (f"train CPU s/image, median ({label} RoIs/image)", c.cpu / BATCH, p.cpu / BATCH),
        ]
    c, p = inference["cascade"], inference["peer"]
    rows += [
        ("inference images/s, best (≤300 dets + masks)", BATCH / c.best, BATCH / p.best),
        ("inference CPU s/image, median", c.cpu / BATCH, p.cpu / BATCH),
        (f"peak RSS MiB ({rss_steps} train steps, fresh process)", rss["cascade"], rss["peer"]),
    ]
    print(f"| {'measure':<48} | {'cascade (3 stages)':>18} | {'torchvision MaskRCNN':>20} | {'ratio':>6} |")
    print(f"|{'-' * 50}|{'-' * 19}:|{'-' * 21}:|{'-' * 7}:|")
    for name, a, b in rows:
        print(f"| {name:<48} | {a:>18.3f} | {b:>20.3f} | {a / b:>6.2f} |")
    print()
    for label, t in (("512", train), ("128", train_128)):
        c, p = t["cascade"], t["peer"]
        print(
            f"training time per image, cascade / peer, {label} RoIs/image: best {c.best / p.best:.2f}, "
            f"median {c.median / p.median:.2f}, CPU {c.cpu / p.cpu:.2f} (target ≤ 1.3)"
        )
    one, sm = soft["one-hot"], soft["soft"]
    print(
        f"soft (uniform-smoothed, ε=0.1) vs one-hot targets, cascade step: best {sm.best:.3f} s vs "
        f"{one.best:.3f} s ({100 * (sm.best / one.best - 1):+.1f} %), CPU {sm.cpu:.3f} s vs {one.cpu:.3f} s "
        f"({100 * (sm.cpu / one.cpu - 1):+.1f} %) (target ≤ 3 %)"
    )
    if args.profile:
        for name, model, batch in (
            ("cascade", make("cascade"), batches[0]),
            ("peer", make("peer"), one_based(batches[0])),
        ):
            print(f"\n## {name}: top ops of 3 training steps")
            model.train()
            profile_step(model, batch)


if __name__ == "__main__":
    main()
