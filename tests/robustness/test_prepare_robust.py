"""data prepare (data/prepare.py): broken meshes are not classes, odd entries are reported, bounded, atomic."""

from __future__ import annotations

import json
import os

import pytest

from pointnet_kit.data.prepare import REPORT_NAME, TMP_MARK, prepare_off
from pointnet_kit.errors import DataError

TETRA = "OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n3 0 2 3\n3 1 2 3\n"


def _folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        (src / f"tetra_{i:04d}.off").write_text(TETRA)
        (src / f"cube_{i:04d}.off").write_text(TETRA.replace("0 0 1\n", "0 0 2\n"))
    (src / "broken_0001.off").write_text("OFF\n4 4 0\n0 0 0\n")
    (src / "garbage.off").write_bytes(b"\x00\xff" * 10)
    os.symlink(src / "missing.off", src / "dangling_0001.off")
    os.mkfifo(src / "pipe_0001.off")
    return src


def test_broken_meshes_are_not_classes_and_odd_entries_are_reported(tmp_path):
    report = prepare_off(_folder(tmp_path), tmp_path / "out", num_points=16, workers=1)
    assert report["classes"] == ["cube", "tetra"] and report["prepared"] == 4
    skipped = {item["file"]: item["error"] for item in report["skipped"]}
    assert set(skipped) == {"broken_0001.off", "garbage.off", "dangling_0001.off", "pipe_0001.off"}
    assert "not a regular file" in skipped["pipe_0001.off"] and "truncated" in skipped["broken_0001.off"]
    assert json.loads((tmp_path / "out" / REPORT_NAME).read_text())["classes"] == ["cube", "tetra"]


@pytest.mark.parametrize("n", [0, 1_000_001, 200_000_000])
def test_num_points_is_bounded(tmp_path, n):
    with pytest.raises(DataError, match="--num-points must be in 1..1000000"):
        prepare_off(_folder(tmp_path), tmp_path / "out", num_points=n, workers=1)
    assert not (tmp_path / "out").exists()


def test_rewrite_is_atomic_and_orphans_are_cleaned(tmp_path, monkeypatch):
    src, out = _folder(tmp_path), tmp_path / "out"
    first = prepare_off(src, out, num_points=16, workers=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / f".out{TMP_MARK}killed").mkdir()  # what a kill -9 mid-prepare leaves behind
    import pointnet_kit.data.prepare as prepare

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device", str(out / "ply_data_train0.h5"))

    monkeypatch.setattr(prepare, "write_hdf5_split", fail)
    with pytest.raises(OSError):
        prepare_off(src, out, num_points=32, workers=1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the earlier prepare is intact
    assert [p.name for p in tmp_path.iterdir() if TMP_MARK in p.name] == []
    assert first["num_points"] == 16


def test_output_that_is_a_file_or_foreign_folder(tmp_path):
    src = _folder(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        prepare_off(src, tmp_path / "file", num_points=16, workers=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="not empty and was not made by 'data prepare'"):
        prepare_off(src, tmp_path / "mine", num_points=16, workers=1)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
