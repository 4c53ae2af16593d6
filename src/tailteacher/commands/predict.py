"""`tailteacher predict CONFIG --checkpoint CKPT --data JSON --out results.json`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError


def register(sub: Any) -> None:
    from ..config_io import add_config_arguments

    p = sub.add_parser(
        "predict",
        help="run a trained detector over a json's images, write COCO results (RLE masks)",
        description="Predict with the model of CONFIG and the weights of --checkpoint over the "
        "images of --data; write COCO results json (RLE masks, top model.detections_per_image per "
        "image), which `tailteacher evaluate` scores.",
    )
    add_config_arguments(p)
    p.add_argument(
        "--checkpoint", required=True, type=Path, help="model_final.safetensors or a checkpoint .pt"
    )
    p.add_argument("--data", required=True, type=Path, help="LVIS/COCO json whose images to predict")
    p.add_argument("--out", required=True, type=Path, help="results json to write")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..config_io import config_from_args
    from ..data.lvis_json import load_lvis
    from ..data.skips import check_skipped
    from ..engine import init_run
    from ..engine.main_rank import on_main
    from ..io import atomic_write_json
    from ..pipeline.data import load_train_data
    from ..pipeline.detector import build_detector, load_detector_weights
    from ..pipeline.prediction import predict_sharded

    if args.batch_size < 1:
        raise InputError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    config: Config = config_from_args(args)
    dist, device = init_run(config.train)
    train = load_train_data(config)
    data = load_lvis(args.data, config.data.image_root)
    if data.category_ids != train.category_ids:
        raise InputError(f"--data: {args.data} has other categories than {config.data.train_json}")
    model = build_detector(config, train)
    load_detector_weights(model, args.checkpoint)
    # Under torchrun the ranks share the batches and rank 0 writes (the same file as one process).
    gathered = predict_sharded(
        model.to(device), data, device=device, batch_size=args.batch_size, progress=True
    )

    def check_and_write() -> None:
        assert gathered is not None
        check_skipped(gathered[1], len(data.images), config.data.max_skipped_fraction, args.data)
        atomic_write_json(args.out, gathered[0])  # after the check: no file from too few images

    on_main(check_and_write)
    if not dist.is_main:
        return 0
    assert gathered is not None
    results, skipped = gathered
    print(f"{len(results)} detections on {len(data.images) - len(skipped)} images -> {args.out}")
    for s in skipped[:20]:
        print(f"skipped image id={s.image_id} {s.file}: {s.reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"... and {len(skipped) - 20} more skipped images", file=sys.stderr)
    return 0
