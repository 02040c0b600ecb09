"""Grouping ops against brute-force NumPy, plus FPS's defining property."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointnet_kit.layers import grouping


def _cloud(b: int, n: int, c: int = 3, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(b, n, c, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _np_sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def test_square_distance_matches_numpy():
    a, b = _cloud(2, 17, 5, seed=1), _cloud(2, 23, 5, seed=2)
    got = grouping.square_distance(a, b).numpy()
    for i in range(2):
        np.testing.assert_allclose(got[i], _np_sqdist(a[i].numpy(), b[i].numpy()), atol=1e-12)
    assert (grouping.square_distance(a, a).diagonal(dim1=1, dim2=2) >= 0).all()


def _np_fps(x: np.ndarray, s: int, start: int) -> list[int]:
    chosen, nearest = [start], _np_sqdist(x, x[[start]])[:, 0]
    for _ in range(s - 1):
        nxt = int(nearest.argmax())
        chosen.append(nxt)
        nearest = np.minimum(nearest, _np_sqdist(x, x[[nxt]])[:, 0])
    return chosen


def test_fps_matches_numpy_and_maximises_min_distance():
    x = _cloud(3, 200, seed=3)
    idx = grouping.farthest_point_sample(x, 32)
    assert idx.shape == (3, 32) and idx.dtype == torch.long
    for i in range(3):
        xi = x[i].numpy()
        assert idx[i].tolist() == _np_fps(xi, 32, start=0)
        assert len(set(idx[i].tolist())) == 32
        # Each new point is, among all points, one farthest from the points chosen before it.
        for j in range(1, 32):
            min_d = _np_sqdist(xi, xi[idx[i, :j].numpy()]).min(1)
            assert min_d[idx[i, j]] == pytest.approx(min_d.max())


def test_fps_generator_seeds_the_start():
    x = _cloud(4, 100, seed=4)
    a = grouping.farthest_point_sample(x, 10, generator=torch.Generator().manual_seed(7))
    b = grouping.farthest_point_sample(x, 10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    starts = torch.randint(100, (4,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[:, 0], starts)
    for i in range(4):
        assert a[i].tolist() == _np_fps(x[i].numpy(), 10, start=int(starts[i]))
    with pytest.raises(ValueError):
        grouping.farthest_point_sample(x, 101)


def _np_ball(x: np.ndarray, c: np.ndarray, r: float, k: int) -> np.ndarray:
    out = np.empty((len(c), k), dtype=np.int64)
    d = _np_sqdist(c, x)
    for s in range(len(c)):
        inside = np.flatnonzero(d[s] <= r * r)[:k]
        if len(inside) == 0:
            inside = np.array([d[s].argmin()])
        out[s] = np.concatenate([inside, np.full(k - len(inside), inside[0])])
    return out


@pytest.mark.parametrize("radius, k", [(0.1, 8), (0.3, 16), (2.0, 4)])
def test_ball_query_matches_numpy(radius, k):
    x = _cloud(2, 300, seed=5)
    centres = torch.cat([x[:, :20], _cloud(2, 5, seed=6) * 3], dim=1)  # 5 far-away centres: empty balls
    got = grouping.ball_query(radius, k, x, centres)
    assert got.shape == (2, 25, k)
    for i in range(2):
        np.testing.assert_array_equal(got[i].numpy(), _np_ball(x[i].numpy(), centres[i].numpy(), radius, k))


@pytest.mark.parametrize("radius, k", [(0.1, 8), (0.3, 16), (2.0, 4)])
def test_ball_query_export_formulation_agrees(radius, k, monkeypatch):
    """While exporting, ball_query scatters into slots (ONNX has no searchsorted): same indices."""
    x = _cloud(2, 300, seed=5)
    centres = torch.cat([x[:, :20], _cloud(2, 5, seed=6) * 3], dim=1)  # with empty balls
    searched = grouping.ball_query(radius, k, x, centres)
    monkeypatch.setattr(torch.compiler, "is_exporting", lambda: True)
    assert torch.equal(grouping.ball_query(radius, k, x, centres), searched)


def test_ball_query_chunks_agree(monkeypatch):
    x, centres = _cloud(2, 128, seed=7), _cloud(2, 40, seed=8)
    whole = grouping.ball_query(0.25, 12, x, centres)
    monkeypatch.setattr(grouping, "_CHUNK_ELEMENTS", 2 * 128 * 7)  # 7 centres per chunk
    assert torch.equal(grouping.ball_query(0.25, 12, x, centres), whole)


def test_knn_matches_numpy():
    feats = _cloud(2, 60, 8, seed=9)
    got = grouping.knn(feats, feats, 5)
    for i in range(2):
        d = _np_sqdist(feats[i].numpy(), feats[i].numpy())
        np.testing.assert_array_equal(got[i].numpy(), np.argsort(d, axis=1, kind="stable")[:, :5])
    assert torch.equal(got[..., 0], torch.arange(60).expand(2, -1))  # itself first


def test_group_and_gather_points():
    feats = _cloud(2, 30, 4, seed=10).transpose(1, 2)  # (B, C, N)
    index = torch.randint(30, (2, 6, 5), generator=torch.Generator().manual_seed(0))
    got = grouping.group(feats, index)
    assert got.shape == (2, 4, 6, 5)
    for b in range(2):
        np.testing.assert_array_equal(got[b].numpy(), feats[b].numpy()[:, index[b].numpy()])
    np.testing.assert_array_equal(
        grouping.gather_points(feats, index[:, :, 0])[1].numpy(), feats[1].numpy()[:, index[1, :, 0].numpy()]
    )


def test_group_gradient_adds_over_repeats():
    feats = torch.zeros(1, 2, 4, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([[[0, 0, 3]]])  # point 0 twice
    grouping.group(feats, index).sum().backward()
    assert feats.grad[0, 0].tolist() == [2.0, 0.0, 0.0, 1.0]


def test_three_interpolate_matches_numpy():
    unknown, known = _cloud(2, 50, seed=11), _cloud(2, 12, seed=12)
    feats = _cloud(2, 12, 6, seed=13).transpose(1, 2)  # (B, 6, S)
    got = grouping.three_interpolate(unknown, known, feats)
    assert got.shape == (2, 6, 50)
    for b in range(2):
        d = _np_sqdist(unknown[b].numpy(), known[b].numpy())
        nn3 = np.argsort(d, axis=1)[:, :3]
        w = 1.0 / np.maximum(np.take_along_axis(d, nn3, 1), 1e-8)
        w /= w.sum(1, keepdims=True)
        want = (feats[b].numpy()[:, nn3] * w[None]).sum(-1)
        np.testing.assert_allclose(got[b].numpy(), want, rtol=1e-10)
    # A known point's own feature comes back at its location (weight ~1 on distance 0).
    at_known = grouping.three_interpolate(known, known, feats)
    np.testing.assert_allclose(at_known.numpy(), feats.numpy(), atol=1e-6)
    single = grouping.three_interpolate(unknown, known[:, :1], feats[:, :, :1])
    assert torch.equal(single, feats[:, :, :1].expand(-1, -1, 50))


def test_ops_run_in_float32():
    x = _cloud(2, 64, dtype=torch.float32)
    idx = grouping.farthest_point_sample(x, 16)
    centres = x.gather(1, idx.unsqueeze(-1).expand(-1, -1, 3))
    ball = grouping.ball_query(0.3, 8, x, centres)
    # Every centre is one of the points, so it is in its own ball.
    assert (ball == idx.unsqueeze(-1)).any(-1).all()
    assert grouping.knn(centres, x, 4).shape == (2, 16, 4)


class _Sampler(torch.nn.Module):
    """FPS (S = min(16, N)), a ball query, k-NN and interpolation: the graph ops the models export."""

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        index = grouping.farthest_point_sample(xyz, torch.sym_min(16, xyz.shape[1]))
        centres = xyz.gather(1, index.unsqueeze(-1).expand(-1, -1, 3))
        balls = grouping.ball_query(0.3, 8, xyz, centres)  # (B, S, 8)
        near = grouping.knn(centres, xyz, 4)  # (B, S, 4)
        feats = grouping.three_interpolate(xyz, centres, centres.transpose(1, 2))  # (B, 3, N)
        return torch.cat([index.unsqueeze(-1), balls, near], dim=2).double() + feats.sum()


def test_exported_ops_keep_fps_one_loop_and_the_batch_dynamic():
    x = _cloud(2, 40, dtype=torch.float32, seed=10)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(_Sampler(), (x,), dynamic_shapes={"xyz": {0: batch}})
    scans = [n for n in program.graph.nodes if n.target is torch.ops.higher_order.scan]
    assert len(scans) == 1  # not 16 unrolled steps
    for b, n in [(2, 40), (3, 40), (1, 40)]:
        y = _cloud(b, n, dtype=torch.float32, seed=b)
        assert torch.equal(program.module()(y), _Sampler()(y))


def test_group_max_is_max_over_each_group_of_rows():
    rows = _cloud(1, 6 * 5, 7, seed=11)[0]  # (30, 7): 6 groups of 5 rows
    rows[5:10] = rows[7]  # a group of identical rows: ties
    values, index = grouping.group_max(rows, 5)
    want = rows.view(6, 5, 7).max(dim=1)
    assert torch.equal(values, want.values) and torch.equal(index, want.indices)
    assert index[1].eq(0).all()  # the first of tied rows
    leaf = rows.clone().requires_grad_()
    grouping.group_max(leaf, 5)[0].sum().backward()
    assert torch.equal(leaf.grad.view(6, 5, 7).sum(1), torch.ones(6, 7))  # each (group, channel) once
