"""The student's teacher with and without its mask branch: time per call and the pseudo-labels.

    python benchmarks/bench_teacher_masks.py RUN [--images 200] [--threads 1]

RUN is a finished run folder (``tailteacher run``; its ``student/config.yaml`` names the teacher,
Δ and the pool). For ``--images`` pool images spread over the pool and over three epochs' views
(the student's seeds), in batches of ``student.unlabeled_batch_size``, the teacher predicts the
weak views with masks (what every student step did before D114) and without (what it does now when
``student.unsup_mask_loss`` is false); the two calls alternate so that another process on the
machine slows both alike. Prints the time per call of each, their ratio, and on how many images
the pseudo-labels (``make_pseudo_labels`` with the run's rule) are identical. They differ only
where a box's mask empties in the strong view: with masks that box was dropped, without it is
kept (D114).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from tailteacher.config import Config
from tailteacher.config_io import load_config
from tailteacher.data.lvis_json import load_lvis
from tailteacher.data.pool_dataset import PoolDataset
from tailteacher.data.transforms import Photometric
from tailteacher.pipeline.data import UnlabeledViews
from tailteacher.pipeline.delta import load_delta
from tailteacher.pipeline.detector import build_detector, load_detector_weights
from tailteacher.pipeline.pseudo_labels import make_pseudo_labels
from tailteacher.pipeline.student import open_pool, pseudo_label_config


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a finished run folder with student/config.yaml")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    config: Config = load_config(args.run / "student" / "config.yaml")
    s = config.student
    assert s is not None and s.teacher_checkpoint is not None
    data = load_lvis(config.data.train_json, config.data.image_root)
    teacher = build_detector(config, data)
    load_detector_weights(teacher, s.teacher_checkpoint)
    teacher.eval()
    delta = load_delta(s.delta, data, s.delta_shrinkage) if s.delta else None
    rule = pseudo_label_config(s)
    pool = PoolDataset(open_pool(config), config.data.image_root)
    strong = Photometric(**s.strong_augmentation.model_dump())
    views = UnlabeledViews(pool, config.train.seed, config.data.image_size, strong)  # the student's views
    size = len(views)
    n = min(args.images, 3 * size)
    step = max(1, 3 * size // n)
    # keyed draw = epoch × size + index (``KeyedViews``): epochs 0, 1, 2 draw other augmentations.
    pairs = [views[k] for k in range(0, 3 * size, step)][:n]

    with_masks, without, same, labels, detections = [], [], 0, 0, 0
    differ: list[tuple[int, int]] = []  # (boxes with masks, boxes without) of each differing image

    def timed(images: list[torch.Tensor], masks: bool) -> tuple[list[dict[str, torch.Tensor]], float]:
        t = time.perf_counter()
        with torch.no_grad():
            out = teacher.predict(images, masks=masks)
        return out, time.perf_counter() - t

    for i in range(0, n, s.unlabeled_batch_size):
        batch = pairs[i : i + s.unlabeled_batch_size]
        images = [v.weak.image.as_subclass(torch.Tensor) for v in batch]  # type: ignore[union-attr]
        if i == 0:  # warm-up, not timed
            timed(images, True)
            timed(images, False)
        # Alternate which goes first, so that neither always runs on a warmer cache.
        if (i // s.unlabeled_batch_size) % 2 == 0:
            a, ta = timed(images, True)
            b, tb = timed(images, False)
        else:
            b, tb = timed(images, False)
            a, ta = timed(images, True)
        with_masks.append(ta)
        without.append(tb)
        for da, db, v in zip(a, b, batch, strict=True):
            geo = (v.weak.geometry, v.strong.geometry)  # type: ignore[union-attr]
            pa = make_pseudo_labels(da, rule, delta, *geo)
            pb = make_pseudo_labels(db, rule, delta, *geo)
            pa.pop("masks", None)  # the step drops them too when unsup_mask_loss is false
            if _same(pa, pb):
                same += 1
            else:
                differ.append((len(pa["boxes"]), len(pb["boxes"])))
            labels += len(pb["boxes"])
            detections += len(db["boxes"])
    calls = len(with_masks)
    tm, tn = sum(with_masks) / calls, sum(without) / calls
    print(f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s); run {args.run}")
    per_image = detections / n
    batch_size = s.unlabeled_batch_size
    print(f"{n} pool images, {calls} calls of {batch_size} weak views, {per_image:.1f} detections/image")
    print(f"teacher.predict with masks    {tm * 1000:7.0f} ms per call")
    print(f"teacher.predict without masks {tn * 1000:7.0f} ms per call   ratio {tn / tm:.2f}")
    print(f"pseudo-labels identical on {same}/{n} images ({labels} boxes, ignored ones included)")
    for kept_with, kept_without in differ:
        print(f"  differs: {kept_with} boxes with the teacher's masks, {kept_without} without")


if __name__ == "__main__":
    main()
