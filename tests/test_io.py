import json
import os
import stat

import pytest

from tailteacher.io import atomic_write_bytes, atomic_write_json


def test_atomic_write_json_round_trip_and_permissions(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_json(path, {"b": 1, "a": [1.5, "x"]})
    assert json.loads(path.read_text()) == {"b": 1, "a": [1.5, "x"]}
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temp file left


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(ValueError):
        atomic_write_json(path, {"v": float("nan")})  # not valid json: refused before writing
    assert json.loads(path.read_text()) == {"v": 1}

    def disk_full(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", disk_full)  # the crash happens after bytes were written
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"half")
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m
