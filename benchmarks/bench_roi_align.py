"""RoIAlign as matrix products (``tailteacher.modeling.roi_align``, D119) against torchvision's.

    python benchmarks/bench_roi_align.py            # ~1 min on 2 cores
    python benchmarks/bench_roi_align.py --quick    # a smoke run

Two tables, each timing ours and torchvision's interleaved in the same process (another process
on the machine slows both alike: read the ratios):

1. the op, forward + backward, on one FPN level [8, 64, S, S] with 64 RoIs per image (the demo's
   box pool: 7 × 7, sampling ratio 2) for S from 12 to 96: where the dense matrix form stops
   paying (``MAX_MATMUL_AREA``);
2. a whole training step (forward, backward, SGD with lr 0) and inference of the `demo` preset's
   model — EfficientNet-Lite0 (ImageNet weights from the installed package) + FPN 64, 96 px,
   batch 8, 64 RoIs per image, 64 classes — with both poolers of its RoI heads swapped.

Prints the maximum difference of the two ops' outputs and gradients too.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
import torchvision

from bench_model import BATCH, Batch, interleaved, synthetic_batches, train_step
from tailteacher.config_io import load_config
from tailteacher.modeling import build_model
from tailteacher.modeling import roi_align as ours

# The shipped `demo` preset's model, read from its config (so the benchmark cannot drift from it);
# 64 classes as in the demo data.
DEMO = load_config("demo").model.model_copy(update={"num_classes": 64})


def _rois(side: int, per_image: int, seed: int) -> torch.Tensor:
    """[BATCH·per_image, 5] boxes 4–60 % of an image of 4·side px (a stride-4 level of side S)."""
    g = torch.Generator().manual_seed(seed)
    size = 4 * side
    wh = (torch.rand(BATCH * per_image, 2, generator=g) * 0.56 + 0.04) * size
    xy = torch.rand(BATCH * per_image, 2, generator=g) * (size - wh)
    image = torch.arange(BATCH).repeat_interleave(per_image).float()[:, None]
    return torch.cat([image, xy, xy + wh], dim=1)


def _op_call(
    fn: Callable[..., torch.Tensor],
    x: torch.Tensor,
    rois: torch.Tensor,
    grads: dict[str, tuple[torch.Tensor, torch.Tensor]],
    key: str,
) -> Callable[[Batch], None]:
    """Forward + backward of ``fn`` on a fresh leaf copy of ``x``; keeps the output and gradient."""

    def call(_: Batch) -> None:
        xi = x.clone().requires_grad_(True)
        out = fn(xi, rois, (7, 7), 0.25, 2, False)
        out.backward(torch.ones_like(out))
        assert xi.grad is not None
        grads[key] = (out.detach(), xi.grad)

    return call


def op_table(sides: list[int], rounds: int) -> None:
    print("\n## The op: forward + backward, [8, 64, S, S], 64 RoIs per image, 7 × 7, sampling ratio 2\n")
    print("| S | torchvision ms | ours ms | ours / torchvision | max |Δ| out | max |Δ| grad |")
    print("|---:|---:|---:|---:|---:|---:|")
    for side in sides:
        x = torch.randn(BATCH, 64, side, side, generator=torch.Generator().manual_seed(side))
        rois = _rois(side, 64, side)
        grads: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        dummy: list[Batch] = [([], [])]
        t = interleaved(
            {
                "tv": _op_call(torchvision.ops.roi_align, x, rois, grads, "tv"),
                "ours": _op_call(ours.roi_align, x, rois, grads, "ours"),
            },
            {"tv": dummy, "ours": dummy},
            rounds,
        )
        d_out = (grads["tv"][0] - grads["ours"][0]).abs().max().item()
        d_grad = (grads["tv"][1] - grads["ours"][1]).abs().max().item()
        print(
            f"| {side} | {t['tv'].median * 1e3:.1f} | {t['ours'].median * 1e3:.1f} | "
            f"{t['ours'].median / t['tv'].median:.2f} | {d_out:.1e} | {d_grad:.1e} |"
        )


def _with_pooler(model: torch.nn.Module, matmul: bool) -> torch.nn.Module:
    heads = model.roi_heads  # type: ignore[union-attr]
    for name in ("box_roi_pool", "mask_roi_pool"):
        pool = getattr(heads, name)
        cls = ours.MultiScaleRoIAlign if matmul else torchvision.ops.MultiScaleRoIAlign
        setattr(heads, name, cls(pool.featmap_names, pool.output_size, pool.sampling_ratio))
    return model


def model_table(rounds: int) -> None:
    print("\n## The demo's model: a training step and inference, batch 8 × 96 px, 64 RoIs per image\n")
    batches = synthetic_batches(4)
    models = {}
    for key, matmul in (("tv", False), ("ours", True)):
        torch.manual_seed(0)
        models[key] = _with_pooler(build_model(DEMO), matmul)
    steps = {}
    for key, model in models.items():
        model.train()
        steps[key] = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0))
    train = interleaved(steps, {k: batches for k in models}, rounds)

    def infer(model: torch.nn.Module) -> Callable[[Batch], None]:
        def call(batch: Batch) -> None:
            with torch.inference_mode():
                model(batch[0])

        return call

    for model in models.values():
        model.eval()
    test = interleaved({k: infer(m) for k, m in models.items()}, {k: batches for k in models}, rounds)
    print("| measure | torchvision | ours | ours / torchvision |")
    print("|---|---:|---:|---:|")
    rows = (
        ("train step s, median", train["tv"].median, train["ours"].median),
        ("inference s per batch, median", test["tv"].median, test["ours"].median),
        ("train step CPU s, median", train["tv"].cpu, train["ours"].cpu),
        ("inference CPU s per batch, median", test["tv"].cpu, test["ours"].cpu),
    )
    for label, tv, mm in rows:
        print(f"| {label} | {tv:.3f} | {mm:.3f} | {mm / tv:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, two sizes: a smoke run")
    args = parser.parse_args()
    rounds = 2 if args.quick else 10
    print(
        f"# RoIAlign: matrix products vs torchvision — torch {torch.__version__}, torchvision "
        f"{torchvision.__version__}, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    op_table([12, 24] if args.quick else [12, 24, 36, 48, 64, 96], rounds)
    model_table(rounds)


if __name__ == "__main__":
    main()
