"""The two candidate data sets measured before the presets were redesigned (D60, docs/results.md).

    python benchmarks/candidate_presets.py scarce twins     # → runs/data/scarce, runs/data/twins

Both are ``demo`` with 600 labeled images (head 150, tail 1) and a 2,000-image pool; ``scarce``
keeps the old demo colours (red, orange, blue, teal), ``twins`` uses the near-hue twins (red/rose,
blue/violet) that ``demo`` and ``bench`` now have. Then, for each NAME::

    tailteacher run demo --set run.run_dir=runs/x_NAME --set data.train_json=runs/data/NAME/train.json \\
      --set data.val_json=runs/data/NAME/val.json --set data.image_root=runs/data/NAME/images \\
      --set data.unlabeled_json=runs/data/NAME/unlabeled.json --set train.max_steps=300   # or 600
"""

from __future__ import annotations

import dataclasses
import sys

from tailteacher.data import synth

_BASE = synth.PRESETS["demo"]
_OLD_COLOURS = tuple((c, t) for c in ("red", "orange", "blue", "teal") for t in ("solid", "striped"))
CANDIDATES = {
    "scarce": dataclasses.replace(
        _BASE,
        name="scarce",
        variants=_OLD_COLOURS,
        train_images=600,
        head_images=150,
        tail_images=1,
        unlabeled_images=2000,
    ),
    "twins": dataclasses.replace(
        _BASE, name="twins", train_images=600, head_images=150, tail_images=1, unlabeled_images=2000
    ),
}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(CANDIDATES):
        print(synth.generate(CANDIDATES[name], 0, f"runs/data/{name}", overwrite=True))
