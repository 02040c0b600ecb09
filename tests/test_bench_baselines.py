"""scripts/bench_baselines.py: its references are the same networks as ours, and its ops agree with ours."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from pointnet_kit.layers import grouping

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_baselines.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_baselines", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_ops_agree_with_ours(bench):
    xyz = torch.rand(2, 200, 3, generator=torch.Generator().manual_seed(0))
    fps = grouping.farthest_point_sample(xyz, 20)
    assert torch.equal(bench.ref_fps_per_element(xyz, 20), fps)
    assert torch.equal(bench.ref_fps_batched(xyz, 20), fps)
    centres = bench.ref_index_points(xyz, fps)
    assert torch.equal(bench.ref_ball_query(0.2, 16, xyz, centres), grouping.ball_query(0.2, 16, xyz, centres))


@pytest.mark.parametrize("model", ["pointnet2_ssg", "dgcnn"])
def test_reference_is_the_same_network(bench, model):
    points, _ = bench._inputs(1, 512 if model == "pointnet2_ssg" else 128)
    ours, ref = bench.build(model, "ours", "batched"), bench.build(model, "reference", "batched")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    with torch.no_grad():
        torch.testing.assert_close(bench._logits(ref.eval(), points), bench._logits(ours.eval(), points))
