"""Bad input is a message and exit 2; a bug in our code shows its traceback."""

from __future__ import annotations

import argparse

import pytest

import tailteacher.commands.split as split_command
from lvis_factory import tiny_lvis, write
from tailteacher.cli import main
from tailteacher.errors import InputError


def test_bad_input_is_a_message_without_traceback(tmp_path, capsys):
    path = write(tmp_path, tiny_lvis(), with_images=False)
    assert main(["split", "--train", str(path), "--out", str(tmp_path / "s"), "--heldout", "1.5"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "tailteacher split: --heldout: expected a fraction in (0, 1), got 1.5"
    assert not (tmp_path / "s").exists()


def test_traceback_flag_adds_the_traceback_to_the_message(tmp_path, capsys):
    path = write(tmp_path, tiny_lvis(), with_images=False)
    argv = ["--traceback", "split", "--train", str(path), "--out", str(tmp_path / "s"), "--heldout", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "InputError" in err
    assert err.rstrip().endswith("tailteacher split: --heldout: expected a fraction in (0, 1), got 2.0")


def test_a_bug_is_not_called_bad_input(tmp_path, monkeypatch):
    def buggy(args: argparse.Namespace) -> int:
        raise ValueError("an internal invariant broke")  # what a bug deep in training raises

    monkeypatch.setattr(split_command, "run", buggy)
    path = write(tmp_path, tiny_lvis(), with_images=False)
    with pytest.raises(ValueError, match="an internal invariant broke"):
        main(["split", "--train", str(path), "--out", str(tmp_path / "s")])


def test_an_os_error_about_a_file_is_a_message(tmp_path, capsys):
    assert main(["split", "--train", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert str(tmp_path) in capsys.readouterr().err


@pytest.mark.parametrize("command", [["ablate", "demo"], ["split", "--train", "x.json", "--out", "y"]])
def test_a_one_process_command_under_torchrun_is_refused(monkeypatch, capsys, command):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"tailteacher {command[0]}: runs in one process, and torchrun started 2" in err
    assert ("--only-seed" in err) == (command[0] == "ablate")


@pytest.mark.parametrize("outcome", ["exit 0", "bad input", "bug"])
def test_a_command_leaves_the_process_group_it_joined(tmp_path, monkeypatch, outcome):
    # A gloo group left to interpreter finalisation can abort the process (SIGABRT for exit 2, D122).
    import torch.distributed as dist

    def command(args: argparse.Namespace) -> int:
        dist.init_process_group(
            "gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1
        )
        if outcome == "bad input":
            raise InputError("--train: refused")
        if outcome == "bug":
            raise ZeroDivisionError("an internal invariant broke")
        return 0

    monkeypatch.setattr(split_command, "run", command)
    argv = ["split", "--train", "x.json", "--out", str(tmp_path / "s")]
    try:
        if outcome == "bug":
            with pytest.raises(ZeroDivisionError):
                main(argv)
        else:
            assert main(argv) == (2 if outcome == "bad input" else 0)
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_ablate_names_the_rows_it_knows_when_given_an_unknown_one(tmp_path, capsys):
    assert main(["ablate", "demo", "--rows", "onehot,student_sof", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--rows: unknown row(s) ['student_sof']" in err and "student_soft" in err
    assert not (tmp_path / "a").exists()
