"""The ablation's paired comparisons, seed by seed: the differences the paper's claims rest on.

Every comparison is one row minus a reference row of the same seed (same initialisation, data
order and augmentations), so the spread of the rows across seeds does not enter; the tables show
each seed's difference beside their mean and sample std. Which comparisons: every student against
the control (the baseline a student must beat; the issue's first target), and the teacher and
student pairs of the paper's Table 1 claims (similarity against uniform smoothing and one-hot
training, soft against one-hot pseudo-labels, Eq. 5 against soft targets), plus what pretraining
is worth (our row). Our decision (docs/decisions.md, D123).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

#: (label, row, reference): the comparisons besides students − control, in the tables' order.
COMPARISONS: tuple[tuple[str, str, str], ...] = (
    ("similarity γ 1.5 − uniform smoothing (teachers)", "sim_g15", "uniform"),
    ("similarity γ 0 − uniform smoothing (teachers)", "sim_g0", "uniform"),
    ("similarity γ 1.5 − one-hot (teachers)", "sim_g15", "onehot"),
    ("pretrained − no pretraining (one-hot teachers)", "onehot", "onehot_random_init"),
    ("soft − one-hot pseudo-labels (students)", "student_soft", "student_onehot"),
    ("Eq. 5 − soft (students)", "student_calibrated", "student_soft"),
    ("Eq. 5 on the top-k − soft (students)", "student_calibrated_topk", "student_soft"),
)

#: The metrics whose per-seed differences the markdown table spells out.
PER_SEED_METRICS = ("AP", "APr")


def per_seed_differences(
    per_seed: Mapping[Any, Mapping[str, Mapping[str, Any]]], row: str, reference: str
) -> dict[str, dict[str, float]]:
    """{metric: {seed: row − reference}} over the seeds that have both rows and the metric.

    ``per_seed`` is ``ablation.json``'s: {seed: {"key@fraction": {metric: value or None}}};
    ``row`` and ``reference`` are full keys (``"student_soft@1"``). Seeds are strings in the result
    (JSON keys), in ascending numeric order. A metric neither row has on any seed is absent.
    """
    out: dict[str, dict[str, float]] = {}
    for seed in sorted(per_seed, key=int):
        rows = per_seed[seed]
        if row not in rows or reference not in rows:
            continue
        for metric, value in rows[row].items():
            ref = rows[reference].get(metric)
            if value is None or ref is None:
                continue
            out.setdefault(metric, {})[str(seed)] = float(value) - float(ref)
    return out


def summarise(differences: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """{metric: {"mean", "std" (sample; None for one seed), "per_seed": {seed: difference}}}."""
    out: dict[str, dict[str, Any]] = {}
    for metric, by_seed in differences.items():
        values = list(by_seed.values())
        out[metric] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else None,
            "per_seed": dict(by_seed),
        }
    return out


def paired_comparisons(
    per_seed: Mapping[Any, Mapping[str, Mapping[str, Any]]],
    student_rows: Sequence[str],
    control: str,
) -> dict[str, dict[str, Any]]:
    """{label: {"row", "reference", metric: summarise(...)[metric] ...}} for every student row
    against ``control`` ("student soft − control") and every ``COMPARISONS`` entry, at all labels
    (``@1``); a comparison no seed holds both rows of is left out."""
    pairs = [(f"{r.replace('_', ' ')} − control", r, control) for r in student_rows if r != control]
    pairs += list(COMPARISONS)
    out: dict[str, dict[str, Any]] = {}
    for label, row, reference in pairs:
        diffs = per_seed_differences(per_seed, f"{row}@1", f"{reference}@1")
        if diffs:
            out[label] = {"row": row, "reference": reference, **summarise(diffs)}
    return out


def comparison_cells(comparisons: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(column names, [{"name", "cells"}]) of the comparison table: AP, APr (1 decimal) and ECE (3)
    as mean ± sample std, then AP and APr per seed ("+1.9 / +1.3 / …", seeds in the header's
    order; "-" where a seed lacks the pair). ``comparisons`` is ``paired_comparisons``' result."""
    seeds = sorted(
        {s for c in comparisons.values() for m in PER_SEED_METRICS for s in c.get(m, {}).get("per_seed", {})},
        key=int,
    )

    def mean_std(entry: Mapping[str, Any] | None, digits: int) -> str:
        if entry is None:
            return "-"
        text = f"{entry['mean']:+.{digits}f}"
        return text if entry["std"] is None else f"{text} ± {entry['std']:.{digits}f}"

    def by_seed(entry: Mapping[str, Any] | None) -> str:
        if entry is None:
            return "-"
        return " / ".join(f"{entry['per_seed'][s]:+.1f}" if s in entry["per_seed"] else "-" for s in seeds)

    seed_names = f"seed {', '.join(seeds)}"
    columns = ["AP", "APr", "ECE", *(f"{m} ({seed_names})" for m in PER_SEED_METRICS)]
    rows = []
    for label, c in comparisons.items():
        cells = [mean_std(c.get("AP"), 1), mean_std(c.get("APr"), 1), mean_std(c.get("ECE"), 3)]
        cells += [by_seed(c.get(m)) for m in PER_SEED_METRICS]
        rows.append({"name": label, "cells": cells})
    return columns, rows


def comparison_table(comparisons: Mapping[str, Mapping[str, Any]]) -> str:
    """``comparison_cells`` as a markdown table."""
    columns, rows = comparison_cells(comparisons)
    lines = [
        "| comparison | " + " | ".join(columns) + " |",
        "|---|" + "|".join("---:" if i < 3 else "---" for i in range(len(columns))) + "|",
    ]
    lines += [f"| {r['name']} | " + " | ".join(r["cells"]) + " |" for r in rows]
    return "\n".join(lines)
