"""A property-based fuzzer over the files users bring (issue 10): LVIS/COCO ground truth, COCO
results and configs, each mutated once from a valid file, and broken files in their place.

The oracle for every generated case, run through the command line (``tailteacher.cli.main``):
- exit 0 (the change was harmless: see ``ACCEPTED`` below), or
- exit 2 with a message on stderr that names the file and, for a change inside a record, a
  ``file: record: field: message`` line; no traceback; nothing written (no ``--out``, no temp file).
Any exception escaping ``main`` is a bug. Examples are derandomized (the same cases in CI and
here); the counts of generated, refused and accepted cases are written to the json file named by
``TAILTEACHER_FUZZ_STATS`` when it is set (docs/reliability.md quotes them).

ACCEPTED — what a reader may take without complaint:
- an unknown key in a record or at the top level of a json file (COCO/LVIS files carry
  ``license``, ``flickr_url``, ``iscrowd`` …) — asserted to be accepted;
- any change the reader does not read (``name``, ``synset`` …) or that stays valid (a score of
  1e308 for evaluation, a deleted optional key, another existing id). In a config an unknown key
  is refused (a typo there silently changes nothing).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz_strategies import (
    UNKNOWN_KEYS,
    Mutation,
    as_json,
    broken_files,
    config_leaves,
    config_mutations,
    ground_truth_mutations,
    junk,
    results_mutations,
    valid_ground_truth,
    valid_results,
)
from tailteacher.cli import main
from tailteacher.config_io import load_config
from tailteacher.engine import dump_config
from tailteacher.errors import InputError
from tailteacher.numbers import is_finite_number

GT = valid_ground_truth()
RESULTS = valid_results(GT)
CONFIG: dict[str, Any] = yaml.safe_load(dump_config(load_config("demo")))
STATS: Counter[str] = Counter()


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


PROBLEM_LINE = re.compile(r"^  (?P<file>.+?): (?P<record>.+?): (?P<field>.+?): ", re.MULTILINE)


@pytest.fixture(scope="module", autouse=True)
def _write_stats() -> Iterator[None]:
    yield
    path = os.environ.get("TAILTEACHER_FUZZ_STATS")
    if path:
        Path(path).write_text(json.dumps(dict(sorted(STATS.items())), indent=1) + "\n")


@contextlib.contextmanager
def _folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz") as d, contextlib.chdir(d):
        yield Path(d)


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def _check_refusal(
    code: int, err: str, folder: Path, inputs: list[Path], in_record: bool, field: str | None = None
) -> None:
    """Exit 2, the file named (with the record and field for a change inside a record: ``field``,
    the key changed, among the words), no traceback, and the folder holding exactly the inputs."""
    assert code == 2, err
    assert "Traceback" not in err
    assert any(str(p) in err for p in inputs), err
    assert sorted(folder.iterdir()) == sorted(inputs), "something was written"
    if in_record:
        named = [m for m in PROBLEM_LINE.finditer(err) if m["file"] in map(str, inputs)]
        assert any(m["record"] not in ("-", "file") and m["field"] != "-" for m in named), err
    if field is not None:
        assert field in err, err


def _outcome(kind: str, code: int) -> None:
    STATS[f"{kind} cases"] += 1
    STATS[f"{kind} {'accepted' if code == 0 else 'refused'}"] += 1


def _record_field(m: Mutation) -> tuple[bool, str | None]:
    """Whether ``m`` changes a field of one record (not a whole record, a list or the top level),
    and then the field's key, which the message must name."""
    in_record = bool(m.record) and isinstance(m.record[-1], int) and isinstance(m.field, str)
    if m.field in ("width", "height") and m.action == "set" and is_finite_number(m.value):
        # a valid-looking size that puts the image's annotations outside it: they are named,
        # with the size ("[2, 3, 8, 8] lies outside the 1.5x32 image")
        return in_record, None
    return in_record, str(m.field) if in_record and m.action != "extra" else None


def _evaluate_case(
    folder: Path, gt: Any, results: Any, mutation: Mutation, iou_type: str, kind: str
) -> tuple[Path, Path, int, str]:
    """Write ``gt`` and ``results`` into ``folder``, run ``evaluate --out`` on them and check the
    outcome: the metrics file on exit 0 (removed again), a proper refusal otherwise. Returns the
    two paths, the exit code and stderr."""
    gt_path, res_path = folder / "gt.json", folder / "results.json"
    gt_path.write_bytes(as_json(gt))
    res_path.write_bytes(as_json(results))
    out = folder / "metrics.json"
    argv = ["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--iou-type", iou_type]
    code, err = _cli([*argv, "--out", str(out)])
    _outcome(f"{kind} (evaluate)", code)
    if code == 0:
        assert out.exists()
        out.unlink()
    else:
        _check_refusal(code, err, folder, [gt_path, res_path], *_record_field(mutation))
    return gt_path, res_path, code, err


# -- ground truth: the evaluator's reader and the training data's (split) ------------------------


@fuzz(300)
@given(ground_truth_mutations(GT), st.sampled_from(["segm", "bbox"]))
def test_fuzz_ground_truth(mutation: Mutation, iou_type: str) -> None:
    check_ground_truth(mutation, iou_type)


def check_ground_truth(mutation: Mutation, iou_type: str = "segm") -> None:
    with _folder() as folder:
        gt_path, res_path, _, _ = _evaluate_case(
            folder, mutation.apply(GT), RESULTS, mutation, iou_type, "ground truth"
        )
        split_out = folder / "split"
        code, err = _cli(["split", "--train", str(gt_path), "--out", str(split_out)])
        _outcome("ground truth (split)", code)
        if code == 0:
            assert (split_out / "train.json").exists()
        else:
            _check_refusal(code, err, folder, [gt_path, res_path], *_record_field(mutation))
    if mutation.action == "extra" and mutation.value in UNKNOWN_KEYS:
        assert code == 0, f"an unknown key is allowed: {err}"


# -- results -------------------------------------------------------------------------------------


@fuzz(300)
@given(results_mutations(RESULTS), st.sampled_from(["segm", "bbox"]))
def test_fuzz_results(mutation: Mutation, iou_type: str) -> None:
    check_results(mutation, iou_type)


def check_results(mutation: Mutation, iou_type: str = "segm") -> None:
    with _folder() as folder:
        _, _, code, err = _evaluate_case(folder, GT, mutation.apply(RESULTS), mutation, iou_type, "results")
    if mutation.action == "extra" and mutation.value in UNKNOWN_KEYS:
        assert code == 0, f"an unknown key is allowed: {err}"


@fuzz(40)
@given(results_mutations(RESULTS))
def test_fuzz_results_calibration(mutation: Mutation) -> None:
    results = mutation.apply(RESULTS)
    with _folder() as folder:
        gt_path, res_path = folder / "gt.json", folder / "results.json"
        gt_path.write_bytes(as_json(GT))
        res_path.write_bytes(as_json(results))
        out = folder / "calibration"
        code, err = _cli(["calibration", "--gt", str(gt_path), "--results", str(res_path), "--out", str(out)])
        _outcome("results (calibration)", code)
        if code == 0:
            assert (out / "calibration.json").exists()
        else:
            _check_refusal(code, err, folder, [gt_path, res_path], *_record_field(mutation))


# -- configs ---------------------------------------------------------------------------------------


def _config_for(folder: Path) -> dict[str, Any]:
    """The shipped demo config, resolved, with its data and run folder inside ``folder`` (no
    train.json there: a config that passes validation stops at 'no such file', writing nothing)."""
    config = json.loads(json.dumps(CONFIG))
    config["data"].update(
        train_json=str(folder / "train.json"),
        val_json=str(folder / "val.json"),
        unlabeled_json=str(folder / "unlabeled.json"),
        image_root=str(folder / "images"),
    )
    config["run"]["run_dir"] = str(folder / "run")
    return config


def _check_config(
    code: int, err: str, folder: Path, config_path: Path, in_record: bool, key: str | None = None
) -> bool:
    """True when the config was accepted (the run then stopped at its missing data); when
    refused, the file (or the ``--set``) and, for a change to a key, that dotted ``key`` named."""
    assert code == 2, err
    assert "Traceback" not in err
    assert sorted(folder.iterdir()) == [config_path], "something was written"
    if str(config_path) not in err and "--set " not in err:
        assert "no such file" in err, err
        return True
    if in_record:
        fields = [m["field"] for m in PROBLEM_LINE.finditer(err)]
        assert any(f not in ("-", "yaml") for f in fields), err
    if key is not None:
        # "train.lr"; a rule over several keys may name the section and both keys ("train: set
        # exactly one of max_steps and epochs") or the other key (stage_box_weights, one per
        # stage of stage_iou_thresholds)
        section = key.rpartition(".")[0]
        fields = [m["field"] for m in PROBLEM_LINE.finditer(err)]
        assert (
            key in err
            or all(part in err for part in key.split("."))
            or any(f.startswith(section + ".") for f in fields if section)
        ), err
    return False


@fuzz(200)
@given(config_mutations(CONFIG))
def test_fuzz_config(mutation: Mutation) -> None:
    check_config(mutation)


def check_config(mutation: Mutation) -> None:
    with _folder() as folder:
        config_path = folder / "config.yaml"
        config = mutation.apply(_config_for(folder))
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        code, err = _cli(["prototypes", str(config_path)])
        key = ".".join(map(str, mutation.path)) if mutation.action != "extra" else None
        accepted = _check_config(code, err, folder, config_path, in_record=True, key=key)
    STATS["config cases"] += 1
    STATS[f"config {'accepted' if accepted else 'refused'}"] += 1
    if (
        mutation.action == "extra"
        or mutation.value in ("", math.inf, -math.inf)
        or mutation.value != mutation.value
    ):
        assert not accepted, "an unknown key, an empty string, NaN and ±inf are refused"


@fuzz(100)
@given(
    st.one_of(st.sampled_from([".".join(p) for p in config_leaves(CONFIG)]), st.text(max_size=12)),
    st.one_of(junk.map(lambda v: yaml.safe_dump(v).removesuffix("\n...\n").strip()), st.text(max_size=12)),
)
def test_fuzz_config_overrides(key: str, value: str) -> None:
    """``--set KEY=VALUE`` with any key and any YAML (or not YAML) as the value."""
    with _folder() as folder:
        config_path = folder / "config.yaml"
        config_path.write_text(yaml.safe_dump(_config_for(folder), sort_keys=False))
        code, err = _cli(["prototypes", str(config_path), f"--set={key}={value}"])  # "=": "-1" is no flag
        accepted = _check_config(code, err, folder, config_path, in_record=False)
        # the --set named (a value may span lines: no line parsing), or for a rule over two keys
        # the key it set ("model.weights: … for backbone 'efficientnet_lite0', not 'A'")
        assert accepted or f"--set {key}=" in err or key.rpartition(".")[2] in err, err
    STATS["config --set cases"] += 1
    STATS[f"config --set {'accepted' if accepted else 'refused'}"] += 1


# -- whole files: empty, binary, truncated, the wrong shape ------------------------------------------


@fuzz(160)
@given(st.sampled_from(["ground truth", "results", "config"]), st.data())
def test_fuzz_broken_files(kind: str, data: st.DataObject) -> None:
    check_broken_file(kind, lambda valid: data.draw(broken_files(valid), label="file"))


def check_broken_file(kind: str, draw: Callable[[bytes], bytes]) -> None:
    with _folder() as folder:
        if kind == "config":
            config_path = folder / "config.yaml"
            valid = yaml.safe_dump(_config_for(folder), sort_keys=False).encode()
            config_path.write_bytes(draw(valid))
            code, err = _cli(["prototypes", str(config_path)])
            accepted = _check_config(code, err, folder, config_path, in_record=False)
            STATS[f"broken {kind} file cases"] += 1
            STATS[f"broken {kind} file {'accepted' if accepted else 'refused'}"] += 1
            return
        gt_path, res_path = folder / "gt.json", folder / "results.json"
        gt_path.write_bytes(as_json(GT))
        res_path.write_bytes(as_json(RESULTS))
        broken = gt_path if kind == "ground truth" else res_path
        broken.write_bytes(draw(broken.read_bytes()))
        out = folder / "metrics.json"
        code, err = _cli(["evaluate", "--gt", str(gt_path), "--results", str(res_path), "--out", str(out)])
        _outcome(f"broken {kind} file (evaluate)", code)
        if code == 0:
            assert out.exists()
            out.unlink()
        else:
            _check_refusal(code, err, folder, [gt_path, res_path], in_record=False)
        if kind == "ground truth":
            code, err = _cli(["split", "--train", str(gt_path), "--out", str(folder / "split")])
            _outcome(f"broken {kind} file (split)", code)
            if code != 0:
                _check_refusal(code, err, folder, [gt_path, res_path], in_record=False)


# -- what the fuzzer found, kept as plain tests ------------------------------------------------------

FOUND = [
    # load_lvis hashed category_id: a list crashed `split` with TypeError (unhashable type)
    ("ground truth", Mutation(("annotations", 0, "category_id"), "set", [])),
    # load_lvis checked an annotation's polygon against its image's size of None: TypeError
    ("ground truth", Mutation(("images", 0, "width"), "set", None)),
    # load_lvis kept a NaN in a field it does not read; split then crashed writing it (ValueError)
    ("ground truth", Mutation(("annotations", 0, "iscrowd"), "set", math.nan)),
    ("ground truth", Mutation(("info", "description"), "set", math.inf)),
    # the evaluator put ids and sizes beyond int64 into numpy arrays: OverflowError
    ("ground truth", Mutation(("images", 0, "height"), "set", 2**63)),
    ("ground truth", Mutation(("annotations", 0, "id"), "set", 2**64)),
]


# configs that passed validation and failed later, far from the key: an empty path ("" is the
# working directory: "Is a directory"), an infinite jitter strength
FOUND += [
    ("config", Mutation(("data", "train_json"), "set", "")),
    ("config", Mutation(("student", "strong_augmentation", "brightness"), "set", math.inf)),
]

BROKEN_FOUND = [
    # load_config read a config that is not UTF-8 with an uncaught UnicodeDecodeError
    ("config", b"\xff\xfe{}"),
]


@pytest.mark.parametrize(("kind", "mutation"), FOUND, ids=[f"{k}:{m.path}={m.value!r}" for k, m in FOUND])
def test_found_by_the_fuzzer(kind: str, mutation: Mutation) -> None:
    {"ground truth": check_ground_truth, "results": check_results, "config": check_config}[kind](mutation)


@pytest.mark.parametrize(("kind", "content"), BROKEN_FOUND, ids=[f"{k}:{c!r}" for k, c in BROKEN_FOUND])
def test_broken_file_found_by_the_fuzzer(kind: str, content: bytes) -> None:
    check_broken_file(kind, lambda valid: content)


def test_both_ground_truth_readers_skip_a_byte_order_mark() -> None:
    """Found by the fuzzer: evaluate read a json with a UTF-8 byte-order mark, split refused it."""
    with _folder() as folder:
        gt_path, res_path = folder / "gt.json", folder / "results.json"
        gt_path.write_bytes(b"\xef\xbb\xbf" + as_json(GT))
        res_path.write_bytes(as_json(RESULTS))
        assert _cli(["evaluate", "--gt", str(gt_path), "--results", str(res_path)])[0] == 0
        assert _cli(["split", "--train", str(gt_path), "--out", str(folder / "split")])[0] == 0


@pytest.mark.parametrize("area", [-1, None, "64", math.nan])
def test_split_refuses_an_area_the_evaluator_refuses(area: Any) -> None:
    """Found by the fuzzer: split accepted it and wrote it into heldout.json, which the run's
    calibrate stage then refused, naming our output instead of the user's file."""
    gt = Mutation(("annotations", 0, "area"), "set", area).apply(GT)
    with _folder() as folder:
        gt_path = folder / "gt.json"
        gt_path.write_bytes(as_json(gt))
        code, err = _cli(["split", "--train", str(gt_path), "--out", str(folder / "split")])
        _check_refusal(code, err, folder, [gt_path], in_record=True)
        assert f"{gt_path}: annotation id=1: area: expected a finite number ≥ 0" in err


def test_a_sections_own_check_names_the_key() -> None:
    """Found by the fuzzer: a section's check filed its problem under the section ("model")."""
    with pytest.raises(InputError) as err:
        load_config("demo", ["model.roi_positive_fraction=0"])
    [problem] = err.value.problems
    assert (problem.file, problem.field) == (
        "--set model.roi_positive_fraction=0",
        "model.roi_positive_fraction",
    )
    assert problem.message == "expected a number in (0, 1], got 0.0"


def test_a_set_that_empties_a_section_is_named() -> None:
    """Found by the fuzzer: the keys ``--set data={}`` left missing were blamed on the file."""
    with pytest.raises(InputError) as err:
        load_config("demo", ["data={}"])
    assert {(p.file, p.field) for p in err.value.problems} == {
        ("--set data={}", f"data.{key}") for key in ("train_json", "val_json", "image_root")
    }
