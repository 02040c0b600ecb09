"""Atomic files and exclusive run folders (pointnet_kit/utils.py)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading

import pytest

from pointnet_kit.errors import PointNetKitError
from pointnet_kit.utils import atomic_write_bytes, atomic_write_text, exclusive_dir, remove_orphan_tmp


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path, monkeypatch):
    path = tmp_path / "metrics.jsonl"
    atomic_write_bytes(path, b"epoch 1\n")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        atomic_write_bytes(path, b"epoch 1\nepoch 2\n")
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"epoch 1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_unwritable_folder_raises_oserror_naming_it(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as info:
        atomic_write_text(tmp_path / "file" / "config.yaml", "a: 1")
    assert str(tmp_path / "file") in str(info.value)


def test_kill_during_writes_leaves_old_or_new_and_orphans_are_removed(tmp_path):
    """A child rewrites a file in a loop and is killed -9: the file is always whole."""
    path = tmp_path / "state.txt"
    atomic_write_text(path, "A" * 100_000)
    code = (f"from pointnet_kit.utils import atomic_write_text\nimport itertools\n"
            f"for i in itertools.count():\n    atomic_write_text({str(path)!r}, 'AB'[i % 2] * 100_000)\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", code], env=env)
    for _ in range(600):  # until the child is writing (importing the package can take seconds)
        if path.read_text()[:1] == "B":
            break
        threading.Event().wait(0.05)
    threading.Event().wait(0.3)
    child.kill()
    child.wait()
    text = path.read_text()
    assert len(text) == 100_000 and len(set(text)) == 1
    remove_orphan_tmp(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_exclusive_dir(tmp_path):
    run = exclusive_dir(tmp_path / "runs" / "a")
    assert run.is_dir() and run == tmp_path / "runs" / "a"
    with pytest.raises(PointNetKitError, match="already exists"):
        exclusive_dir(run)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.yaml").write_text("user's")
    with pytest.raises(PointNetKitError, match="already exists"):
        exclusive_dir(tmp_path / "mine")
    assert (tmp_path / "mine" / "config.yaml").read_text() == "user's"


def test_exclusive_dir_unique_names_under_a_race(tmp_path):
    base = tmp_path / "runs" / "default-20250101-120000"
    made, barrier = [], threading.Barrier(8)

    def make():
        barrier.wait()
        made.append(exclusive_dir(base, unique=True))

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8 and base in made and all(p.is_dir() for p in made)
