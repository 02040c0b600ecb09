"""pointnet-kit data {download,prepare,info}: exit codes and what the user reads."""

from __future__ import annotations

import json
import socket

import pytest

from pointnet_kit.cli import main as cli

TETRA = "OFF4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"


@pytest.fixture
def run(monkeypatch, capsys):
    """Run the CLI with only the data commands registered (other areas' modules are not needed)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ["pointnet_kit.cli.data"])

    def _run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture
def flat_meshes(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    for name in ("cone_0001", "cone_0002", "desk_0001"):
        (folder / f"{name}.off").write_text(TETRA)
    (folder / "desk_0002.off").write_text("OFF\n4 4 0\n0 0 0\n")
    return folder


def test_help_for_every_subcommand(run):
    for argv in (["data", "--help"], ["data", "download", "--help"], ["data", "prepare", "--help"], ["data", "info", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            run(*argv)
        assert exit_info.value.code == 0


def test_prepare_then_info(run, flat_meshes, tmp_path):
    out = tmp_path / "prepared"
    code, text, _ = run("data", "prepare", flat_meshes, "--out", out, "--num-points", 64, "--workers", 1, "--split", "test")
    assert code == 0
    assert "prepared 3 of 4 meshes" in text and "(test 3; 2 classes)" in text
    assert "skipped desk_0002.off:" in text and "truncated" in text
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"][0]["file"] == "desk_0002.off" and report["splits"] == {"test": 3}
    code, text, _ = run("data", "info", out)
    assert code == 0 and "hdf5 dataset, 2 classes" in text and "test: 3 shapes, 64 points per shape, no normals" in text
    assert "skipped when prepared: 1 file(s)" in text
    code, text, _ = run("data", "info", out, "--json")
    info = json.loads(text)
    assert info["classes"] == ["cone", "desk"] and info["splits"]["test"]["per_class"] == {"cone": 2, "desk": 1}


def test_info_on_embedded_and_bad_folder(run, tmp_path, monkeypatch):
    from pointnet_kit.data import synthetic

    monkeypatch.setattr(synthetic, "SHAPES_PER_CLASS", {"train": 2, "test": 1})
    monkeypatch.setattr(synthetic, "VERSION", "cli-test")
    code, text, _ = run("data", "info", "default", "--json")
    assert code == 0 and json.loads(text)["num_classes"] == len(synthetic.CLASS_NAMES)
    code, _, err = run("data", "info", tmp_path / "nowhere")
    assert code == 2 and err.startswith("error: ") and "no such folder" in err and "Traceback" not in err


def test_prepare_errors_are_one_line(run, tmp_path):
    (tmp_path / "empty").mkdir()
    code, _, err = run("data", "prepare", tmp_path / "empty", "--out", tmp_path / "o")
    assert code == 2 and "no .off files found" in err
    code, _, err = run("data", "prepare", tmp_path / "empty", "--out", tmp_path / "o", "--num-points", 0)
    assert code == 2 and "--num-points" in err


def test_download_offline_exits_nonzero_with_instructions(run, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run("data", "download", "modelnet10", "--root", tmp_path, "--url", f"http://127.0.0.1:{port}/ModelNet10.zip", "--timeout", 5)
    assert code == 2 and "cannot connect" in err and "by hand" in err and str(tmp_path / "ModelNet10") in err


def test_info_on_shapenetpart_samples(run, shared_data):
    for layout, shapes in (("v0", 16), ("v0_normal", 2)):
        code, text, _ = run("data", "info", shared_data / "shapenetpart_sample" / layout, "--json")
        info = json.loads(text)
        assert code == 0 and info["num_classes"] == 16 and info["task"] == "part_segmentation" and info["num_parts"] == 50
        assert info["splits"]["train"]["shapes"] == shapes
        assert all(s["num_parts"] == len(s["parts"]) >= 1 for s in info["shapes"])
    code, text, _ = run("data", "info", shared_data / "shapenetpart_sample" / "v0")
    assert "shapenetpart_v0 dataset, 16 categories (part_segmentation, up axis y)" in text and "parts per shape:" in text


def test_info_near_duplicates(run, tmp_path):
    import numpy as np
    import trimesh

    from pointnet_kit.data.hdf5 import write_hdf5_split

    mesh = trimesh.creation.annulus(r_min=0.3, r_max=1.0, height=0.4)
    other = trimesh.creation.box(extents=(1.5, 1.0, 0.2))
    clouds = [trimesh.sample.sample_surface(m, 512, seed=s)[0] for m, s in ((mesh, 1), (mesh, 2), (other, 3), (other, 4))]
    clouds = np.stack([c - c.mean(0) for c in clouds]).astype(np.float32)
    write_hdf5_split(tmp_path, "train", clouds[[0, 2]], np.array([0, 1]), ["ring", "slab"], ids=["ring/a", "slab/a"])
    write_hdf5_split(tmp_path, "test", clouds[[1, 3]], np.array([0, 1]), ["ring", "slab"], ids=["ring/b", "slab/b"])
    code, text, _ = run("data", "info", tmp_path, "--json", "--near-duplicates")
    info = json.loads(text)
    assert code == 0 and info["duplicates"]["groups"] == 0  # no cloud repeats exactly ...
    near = info["near_duplicates"]  # ... but each shape was sampled twice, once per split
    assert near["groups"] == 2 and near["cross_split"] == 2
    assert sorted(sorted(g) for g in near["examples"]) == [["test:ring/b", "train:ring/a"], ["test:slab/b", "train:slab/a"]]
