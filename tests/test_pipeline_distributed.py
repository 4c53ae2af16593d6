"""The pipeline under real torchrun (2 gloo processes on CPU) against one process, on `tiny`.

Prediction, evaluation and calibration shared among ranks equal one process's exactly; the
student under DDP sees the images one process sees with the same global batch, and ends near its
weights; `tailteacher run` writes each record once and a second run skips every stage on every rank.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from tailteacher.cli import main
from tailteacher.data.synth import generate
from tailteacher.pipeline.stages import HASH_VERSION

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
sys.path.insert(0, str(Path(__file__).parent))
from torchrun import torchrun  # noqa: E402

from tiny_run import tiny_run_sets  # noqa: E402

SCRIPT = HELPERS / "dist_pipeline.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", 0, out)
    return out


@pytest.fixture(scope="module")
def teacher(tiny, tmp_path_factory) -> Path:
    """A teacher trained 3 steps on `tiny` (one process): some detections, some pseudo-labels."""
    run = tmp_path_factory.mktemp("teacher")
    sets = tiny_run_sets(tiny, run, **{"data.heldout_json": f"{tiny}/val.json"})
    assert main(["train-teacher", "demo", *(f"--set={k}={v}" for k, v in sets.items())]) == 0
    return run / "model_final.safetensors"


def _files(folder: Path) -> dict[str, bytes]:
    names = ["val_results.json", "val_metrics.json"]
    names += [f"calibration/{n}" for n in ("heldout_results.json", "calibration.json", "delta.safetensors")]
    return {n: (folder / n).read_bytes() for n in names}


@pytest.mark.distributed
def test_shared_prediction_evaluation_and_calibration_equal_one_process(tiny, teacher, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torchrun(SCRIPT, "predict", str(one), str(tiny), str(teacher), nproc=1)
    torchrun(SCRIPT, "predict", str(two), str(tiny), str(teacher), nproc=2)

    assert json.loads((one / "val_results.json").read_text())  # some detections to compare
    assert _files(two) == _files(one)  # the same bytes: detections, metrics, Δ
    reference = json.loads((one / "rank0.json").read_text())
    for rank in (0, 1):  # every rank got the metrics and the calibration back
        assert json.loads((two / f"rank{rank}.json").read_text()) == reference


@pytest.mark.distributed
def test_student_on_two_processes_matches_one_process_with_the_global_batch(tiny, teacher, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torchrun(SCRIPT, "student", str(one), str(tiny), str(teacher), "4", "4", nproc=1)
    torchrun(SCRIPT, "student", str(two), str(tiny), str(teacher), "2", "2", nproc=2)
    ref = torch.load(one / "rank0.pt", weights_only=True)
    ranks = [torch.load(two / f"rank{r}.pt", weights_only=True) for r in (0, 1)]

    # Each step, the two ranks together train on the images one process trains on.
    for step, seen in enumerate(ref["seen"]):
        for key in ("labeled", "unlabeled"):
            mine = [r["seen"][step][key] for r in ranks]
            assert sorted(mine[0] + mine[1]) == sorted(seen[key]), (step, key)
    # The teacher labels each rank's own unlabeled batch: the same pseudo-labels in all.
    summed = [a + b for a, b in zip(ranks[0]["pseudo_boxes"], ranks[1]["pseudo_boxes"], strict=True)]
    assert sum(ref["pseudo_boxes"]) > 0 and summed == ref["pseudo_boxes"]

    # Losses: rank 0 logs the mean over ranks; they differ from one process's by the detector's
    # random anchor and RoI draws (each rank its own stream) and its per-rank loss means
    # (measured: at most 5.4 %; weights 5 % of the update; the bounds leave twice that).
    def losses(folder: Path) -> list[float]:
        lines = (folder / "run" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["total_loss"] for line in lines if "total_loss" in line]

    assert len(losses(one)) == len(losses(two)) == len(ref["seen"])
    assert losses(two) == pytest.approx(losses(one), rel=0.1)
    # Weights: every rank holds the same replica, and it ends near one process's (the difference is
    # small against what training moved).
    moved = diff = 0.0
    for key, value in ref["weights"].items():
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), key
        if value.is_floating_point():
            moved += float((value - ref["initial"][key]).pow(2).sum())
            diff += float((ranks[0]["weights"][key] - value).pow(2).sum())
    assert moved > 0 and diff**0.5 < 0.1 * moved**0.5, (diff**0.5, moved**0.5)


@pytest.mark.distributed
def test_run_under_torchrun_writes_each_record_once_and_resumes_on_every_rank(tiny, tmp_path):
    run = tmp_path / "run"
    sets = tiny_run_sets(tiny, run)
    first = torchrun("tailteacher", "run", "demo", *(f"--set={k}={v}" for k, v in sets.items()), module=True)
    stages = ("split", "teacher", "calibrate", "control", "pseudo_labels", "student")
    for stage in stages:  # rank 0 alone logs, decides and writes: one line each
        assert first.stdout.count(f"[{stage}] running") == 1, first.stdout
        assert first.stdout.count(f"[{stage}] finished") == 1
        record = json.loads((run / stage.replace("calibrate", "calibration") / "stage.json").read_text())
        assert record["processes"] == 2
    assert first.stdout.count("| student (calibrated) ") == 1  # the table, printed once
    records = {p: p.stat().st_mtime_ns for p in run.rglob("stage.json")}

    torchrun(SCRIPT, "run", str(tmp_path), str(tiny))
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["skipped"] == dict.fromkeys(stages, True)
        assert len(got["log"]) == (len(stages) if rank == 0 else 0)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("stage.json")} == records


@pytest.mark.distributed
def test_a_one_process_command_or_a_refused_stage_stops_every_rank_with_exit_2(tiny, tmp_path):
    ablate = torchrun("tailteacher", "ablate", "demo", module=True, check=False)
    assert ablate.returncode != 0 and "exitcode  : 2" in ablate.stderr
    assert "tailteacher ablate: runs in one process, and torchrun started 2" in ablate.stderr

    run = tmp_path / "run"  # a split finished on other inputs: rank 0 refuses, every rank stops
    (run / "split").mkdir(parents=True)
    record = {"stage": "split", "hash_version": HASH_VERSION, "hash": "other"}
    (run / "split" / "stage.json").write_text(json.dumps(record))
    sets = tiny_run_sets(tiny, run)
    refused = torchrun(
        "tailteacher", "run", "demo", *(f"--set={k}={v}" for k, v in sets.items()), module=True, check=False
    )
    assert refused.returncode != 0 and "exitcode  : 2" in refused.stderr
    assert "stage 'split' finished here with other inputs" in refused.stderr
    # bad input on every rank, not a peer crashing in a collective (torchrun prints its own traceback)
    assert "MainRankError" not in refused.stderr and "Connection closed" not in refused.stderr
