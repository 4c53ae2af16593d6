"""Do the class prototypes group look-alike classes? Their structure on the embedded benchmark.

    python benchmarks/prototype_structure.py SOURCE [SOURCE ...] [--set KEY=VALUE ...]
        [--names TRAIN_JSON] [--out DIR]

SOURCE is a ``prototypes.safetensors`` (from ``tailteacher prototypes`` or a run's prototypes
stage; class names from ``--names``) or a config (a YAML file or a shipped name such as ``demo``,
with the ``--set`` overrides): its prototypes are computed as the prototypes stage does (the
backbone's trunk as ``model.weights`` loads it, no detection training; all of
``data.train_json``, not the pipeline's 85 % split) into ``--out``.

The benchmark's classes are ``{colour}_{texture}_{family}`` (``data/synth.py``). For each class,
its 3 nearest other classes by cosine of the prototypes: the share with the same shape family,
the same variant (colour and texture), the same colour and the same texture, against chance (the
share among all other classes). Classes without instances (a zero prototype) are left out. Plus
the mean, min and max off-diagonal cosine. Prints a markdown table; writes ``structure.json`` into ``--out``.

Example (the two trunks of docs/decisions.md D58):

    python benchmarks/prototype_structure.py demo --set model.backbone=efficientnet_lite0 \\
        --set model.weights=package:efficientnet_lite0 --set model.resnet_norm=frozen_batch
    python benchmarks/prototype_structure.py demo      # resnet18, random init (train.seed 0)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from tailteacher.config_io import load_config
from tailteacher.labels import cosine_similarity_matrix
from tailteacher.pipeline.prototypes import compute_prototypes, load_prototypes
from tailteacher.pipeline.run import with_updates

TOP_K = 3
ATTRIBUTES = ("family", "variant", "colour", "texture")


def class_attributes(name: str) -> dict[str, str]:
    """``red_striped_star`` → family ``star``, variant ``red_striped``, colour ``red``, texture
    ``striped``."""
    parts = name.split("_")
    if len(parts) != 3:
        raise ValueError(f"class {name!r}: expected colour_texture_family (the embedded benchmark)")
    colour, texture, family = parts
    return {"family": family, "variant": f"{colour}_{texture}", "colour": colour, "texture": texture}


def category_names(train_json: str | Path) -> list[str]:
    """Names in the order of the contiguous labels (categories sorted by id, as ``load_lvis``)."""
    categories = json.loads(Path(train_json).read_text(encoding="utf-8"))["categories"]
    return [str(c["name"]) for c in sorted(categories, key=lambda c: c["id"])]


def structure(prototypes: torch.Tensor, counts: torch.Tensor, names: list[str]) -> dict[str, Any]:
    """Top-3 neighbour shares per attribute vs chance, and off-diagonal cosine statistics."""
    if len(names) != prototypes.shape[0]:
        raise ValueError(f"{prototypes.shape[0]} prototypes but {len(names)} class names")
    keep = (counts > 0).nonzero().flatten()
    sim = cosine_similarity_matrix(prototypes[keep].double())
    attrs = [class_attributes(names[int(i)]) for i in keep]
    c = len(attrs)
    off = ~torch.eye(c, dtype=torch.bool)
    nearest = sim.masked_fill(~off, -torch.inf).topk(TOP_K, dim=1).indices
    out: dict[str, Any] = {"classes": c}
    for a in ATTRIBUTES:
        same = torch.tensor([[attrs[i][a] == attrs[j][a] for j in range(c)] for i in range(c)])
        hits = same.gather(1, nearest).double().mean(dim=1)
        chance = (same & off).double().sum(dim=1) / (c - 1)
        out[f"top{TOP_K}_same_{a}"] = float(hits.mean())
        out[f"chance_same_{a}"] = float(chance.mean())
    values = sim[off]
    out.update(cos_mean=float(values.mean()), cos_min=float(values.min()), cos_max=float(values.max()))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="prototypes.safetensors or a config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--names", default="runs/data/demo/train.json", help="class names for .safetensors")
    p.add_argument("--out", type=Path, default=Path("runs/prototype_structure"))
    args = p.parse_args()
    rows: dict[str, dict[str, Any]] = {}
    for k, source in enumerate(args.sources):
        if source.endswith(".safetensors"):
            tensors = load_prototypes(Path(source))
            names = category_names(args.names)
            label = source
        else:
            cfg = load_config(source, args.overrides)
            run_dir = args.out / f"{k}_{cfg.model.backbone}"
            cfg = with_updates(cfg, run={"run_dir": str(run_dir)})
            tensors = load_prototypes(compute_prototypes(cfg))
            names = category_names(cfg.data.train_json)
            label = f"{source} {cfg.model.backbone} weights={cfg.model.weights}"
        rows[label] = structure(tensors["prototypes"], tensors["counts"], names)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "structure.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    head = [f"top-{TOP_K} same {a} (chance)" for a in ATTRIBUTES] + ["cos mean [min, max]"]
    print("| source | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for label, r in rows.items():
        cells = [f"{r[f'top{TOP_K}_same_{a}']:.1%} ({r[f'chance_same_{a}']:.1%})" for a in ATTRIBUTES]
        cells.append(f"{r['cos_mean']:.3f} [{r['cos_min']:.3f}, {r['cos_max']:.3f}]")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
