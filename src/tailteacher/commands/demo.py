"""`tailteacher demo`: the embedded `demo` benchmark generated, then the whole pipeline on it."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="generate the embedded demo benchmark and run the whole pipeline on it (CPU)",
        description="Generate the `demo` preset of the embedded benchmark (64 synthetic classes, "
        "long-tailed; a test bed, not LVIS) into runs/data/demo unless it is there, then run "
        "`tailteacher run demo`: teacher, calibration, student and evaluation on 2 CPU cores. "
        "Stopped part-way, the same command resumes.",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a value of the shipped demo config, e.g. --set run.run_dir=runs/demo2",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..config_io import PACKAGED_CONFIGS, load_config
    from ..data.synth import generate
    from ..pipeline.run import run_pipeline
    from ..report.markdown import format_table, gain_sentence
    from .synth import format_summary

    t0 = time.perf_counter()
    config: Config = load_config(PACKAGED_CONFIGS / "demo.yaml", args.overrides)
    data = Path(config.data.val_json).parent
    names = ("train.json", "val.json", "unlabeled.json", "unlabeled_truth.json")  # after the images
    if all((data / n).is_file() for n in names):
        print(f"[benchmark] {data} exists, reused")
    else:
        print(f"[benchmark] generating the demo preset into {data}")
        print(format_summary(generate("demo", 0, data, overwrite=data.exists())))
    result = run_pipeline(config)
    print()
    print(format_table(result.rows))
    gain = gain_sentence(result.rows)
    if gain is not None:
        print(f"\n{gain}")
    minutes = (time.perf_counter() - t0) / 60
    print(f"\n({minutes:.1f} min in all; report.md and report.json beside the page)")
    print(f"report: {result.run_dir / 'report.html'}")
    return 0
