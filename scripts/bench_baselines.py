#!/usr/bin/env python
"""PointNet++ SSG and DGCNN against plain-PyTorch references written the way the popular ports write them.

One JSON object per (model, mode) on stdout. The reference has the same architecture and the same
weights (copied; the script first checks that both give the same eval logits) but does its
neighbourhood work the common way:

* PointNet++: farthest point sampling as a Python loop over the centroids, vectorised over the batch
  as the most used port does (``--ref-fps per_element`` loops over the batch elements too); ball query by
  masking the full (B, S, N) distance matrix with N and sorting it; grouping by fancy indexing with
  a batch index; the shared MLP on (B, C, K, S).
* DGCNN: the full (B, N, N) distance matrix and ``topk``; edge features (B, 2C, N, k) built by flat
  fancy indexing, then ``Conv2d(1x1)`` on them.

Ours: :mod:`pointnet_kit.layers.grouping` (FPS vectorised over the batch, ball query by running count,
``gather``), the set-abstraction MLP as ``Linear`` + ``BatchNorm`` on rows ``(B*S*K, C)`` with the last
ReLU after the max (on each ball's distinct points only when most of the block is padding, BatchNorm
statistics still counting the copies: the same function), and the factored EdgeConv. Steps are interleaved
A B A B in one process; the ratio is reference time / our time per round (median, min, max over rounds). ``peak_memory_mb`` (CPU, Linux):
a fresh process runs two steps of one variant; ``peak_rss_mb`` is its peak resident memory (torch and
the model included), ``step_mb`` the peak minus the resident memory just before the steps.

    OMP_NUM_THREADS=1 python scripts/bench_baselines.py
    python scripts/bench_baselines.py --data ../shared/data/modelnet40_ply_hdf5_1024/ply_data_train0.h5
    python scripts/bench_baselines.py --models pointnet2_ssg --modes train --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
# This checkout first: the installed `pointnet-kit` may point at another copy of the package.
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

from _bench_common import add_malloc_option, apply_malloc, malloc_mode  # noqa: E402

from pointnet_kit.models import create_model  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# The reference: PointNet++ as the popular PyTorch ports write it.


def ref_square_distance(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """(B, N, C), (B, M, C) -> (B, N, M), the expanded |a|^2 + |b|^2 - 2ab."""
    dist = -2 * torch.matmul(src, dst.permute(0, 2, 1))
    dist += torch.sum(src**2, -1).unsqueeze(-1)
    dist += torch.sum(dst**2, -1).unsqueeze(1)
    return dist


def ref_index_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """points (B, N, C), idx (B, ...) -> (B, ..., C) by fancy indexing with a broadcast batch index."""
    batch = torch.arange(points.shape[0], device=points.device).view(-1, *([1] * (idx.dim() - 1)))
    return points[batch.expand_as(idx), idx]


def ref_fps_per_element(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Python loop over batch elements, then over centroids (start at point 0)."""
    out = []
    for cloud in xyz:  # (N, 3)
        distance = torch.full((cloud.shape[0],), 1e10, device=xyz.device)
        farthest = 0
        chosen = []
        for _ in range(npoint):
            chosen.append(farthest)
            dist = torch.sum((cloud - cloud[farthest]) ** 2, -1)
            mask = dist < distance
            distance[mask] = dist[mask]
            farthest = int(torch.argmax(distance))
        out.append(torch.tensor(chosen, device=xyz.device))
    return torch.stack(out)


def ref_fps_batched(xyz: torch.Tensor, npoint: int) -> torch.Tensor:
    """Python loop over centroids, vectorised over the batch (start at point 0)."""
    b, n, _ = xyz.shape
    centroids = torch.zeros(b, npoint, dtype=torch.long, device=xyz.device)
    distance = torch.ones(b, n, device=xyz.device) * 1e10
    farthest = torch.zeros(b, dtype=torch.long, device=xyz.device)
    batch = torch.arange(b, device=xyz.device)
    for i in range(npoint):
        centroids[:, i] = farthest
        dist = torch.sum((xyz - xyz[batch, farthest].view(b, 1, 3)) ** 2, -1)
        mask = dist < distance
        distance[mask] = dist[mask]
        farthest = torch.max(distance, -1)[1]
    return centroids


def ref_ball_query(radius: float, nsample: int, xyz: torch.Tensor, new_xyz: torch.Tensor) -> torch.Tensor:
    """Mark out-of-ball indices with N, sort the full (B, S, N) index matrix, keep the first K, pad."""
    b, n, _ = xyz.shape
    s = new_xyz.shape[1]
    group_idx = torch.arange(n, device=xyz.device).view(1, 1, n).repeat(b, s, 1)
    group_idx[ref_square_distance(new_xyz, xyz) > radius**2] = n
    group_idx = group_idx.sort(dim=-1)[0][:, :, :nsample]
    first = group_idx[:, :, :1].repeat(1, 1, nsample)
    mask = group_idx == n
    group_idx[mask] = first[mask]
    return group_idx


def _ref_mlp(widths: list[int], dim: int = 2) -> nn.Sequential:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dim == 2 else (nn.Conv1d, nn.BatchNorm1d)
    layers: list[nn.Module] = []
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [conv(c_in, c_out, 1), bn(c_out), nn.ReLU()]
    return nn.Sequential(*layers)


class RefSetAbstraction(nn.Module):
    def __init__(self, npoint, radius, nsample, in_channel, widths, group_all, fps):
        super().__init__()
        self.npoint, self.radius, self.nsample, self.group_all, self.fps = npoint, radius, nsample, group_all, fps
        self.mlp = _ref_mlp([in_channel, *widths])

    def forward(self, xyz, points):  # xyz (B, N, 3), points (B, N, D) or None
        b, n, c = xyz.shape
        if self.group_all:
            new_xyz = torch.zeros(b, 1, c, device=xyz.device)
            grouped = xyz.view(b, 1, n, c)
            new_points = grouped if points is None else torch.cat([grouped, points.view(b, 1, n, -1)], -1)
        else:
            new_xyz = ref_index_points(xyz, self.fps(xyz, self.npoint))  # (B, S, 3)
            idx = ref_ball_query(self.radius, self.nsample, xyz, new_xyz)
            grouped_xyz = ref_index_points(xyz, idx) - new_xyz.view(b, self.npoint, 1, c)
            new_points = grouped_xyz if points is None else torch.cat([grouped_xyz, ref_index_points(points, idx)], -1)
        new_points = new_points.permute(0, 3, 2, 1)  # (B, C + D, K, S)
        new_points = torch.max(self.mlp(new_points), 2)[0]  # (B, C', S)
        return new_xyz, new_points.permute(0, 2, 1)


class RefPointNet2SSG(nn.Module):
    def __init__(self, num_classes: int, fps) -> None:
        super().__init__()
        self.sa1 = RefSetAbstraction(512, 0.2, 32, 3, [64, 64, 128], False, fps)
        self.sa2 = RefSetAbstraction(128, 0.4, 64, 128 + 3, [128, 128, 256], False, fps)
        self.sa3 = RefSetAbstraction(None, None, None, 256 + 3, [256, 512, 1024], True, fps)
        self.fc = nn.Sequential(
            nn.Linear(1024, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, xyz):  # (B, N, 3)
        l1_xyz, l1 = self.sa1(xyz, None)
        l2_xyz, l2 = self.sa2(l1_xyz, l1)
        _, l3 = self.sa3(l2_xyz, l2)
        return self.fc(l3.view(xyz.shape[0], -1))


# The reference DGCNN, as the authors' PyTorch code computes it.


def ref_knn(x: torch.Tensor, k: int) -> torch.Tensor:
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x**2, dim=1, keepdim=True)
    return (-xx - inner - xx.transpose(2, 1)).topk(k=k, dim=-1)[1]  # (B, N, k)


def ref_graph_feature(x: torch.Tensor, k: int) -> torch.Tensor:
    b, c, n = x.shape
    idx = ref_knn(x, k) + torch.arange(b, device=x.device).view(-1, 1, 1) * n
    x = x.transpose(2, 1).contiguous()  # (B, N, C)
    feature = x.view(b * n, -1)[idx.view(-1), :].view(b, n, k, c)
    x = x.view(b, n, 1, c).repeat(1, 1, k, 1)
    return torch.cat((x, feature - x), dim=3).permute(0, 3, 1, 2).contiguous()  # (B, 2C, N, k)


class RefDGCNN(nn.Module):
    def __init__(self, num_classes: int, k: int = 20) -> None:
        super().__init__()
        self.k = k

        def edge(c_in, c_out):
            return nn.Sequential(nn.Conv2d(2 * c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

        self.convs = nn.ModuleList([edge(3, 64), edge(64, 64), edge(64, 128), edge(128, 256)])
        self.conv5 = nn.Sequential(nn.Conv1d(512, 1024, 1, bias=False), nn.BatchNorm1d(1024), nn.LeakyReLU(0.2))
        self.head = nn.Sequential(
            nn.Linear(2048, 512, bias=False), nn.BatchNorm1d(512), nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(512, 256), nn.BatchNorm1d(256), nn.LeakyReLU(0.2), nn.Dropout(0.5),
            nn.Linear(256, num_classes),
        )

    def forward(self, points):  # (B, N, 3)
        x = points.transpose(1, 2)
        outs = []
        for conv in self.convs:
            x = conv(ref_graph_feature(x, self.k)).max(dim=-1)[0]
            outs.append(x)
        x = self.conv5(torch.cat(outs, dim=1))
        x = torch.cat([F.adaptive_max_pool1d(x, 1).flatten(1), F.adaptive_avg_pool1d(x, 1).flatten(1)], 1)
        return self.head(x)


# ---------------------------------------------------------------------------------------------------


def build(model: str, variant: str, ref_fps: str) -> nn.Module:
    """``ours`` from the registry, or the reference with our weights copied in (same parameter order)."""
    ours = create_model(model, num_classes=40, seed=0)
    if variant == "ours":
        return ours
    fps = ref_fps_per_element if ref_fps == "per_element" else ref_fps_batched
    ref = RefPointNet2SSG(40, fps) if model == "pointnet2_ssg" else RefDGCNN(40)
    ours_state, ref_state = ours.state_dict(), ref.state_dict()
    assert [v.shape for v in ours_state.values()] == [v.shape for v in ref_state.values()], "architectures differ"
    ref.load_state_dict(dict(zip(ref_state, ours_state.values())))
    return ref


def _logits(model: nn.Module, points: torch.Tensor) -> torch.Tensor:
    out = model(points)
    return out["logits"] if isinstance(out, dict) else out


def make_step(model: nn.Module, mode: str, points: torch.Tensor, labels: torch.Tensor):
    if mode == "infer":
        model.eval()

        def step() -> None:
            with torch.no_grad():
                _logits(model, points)

        return step
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = F.cross_entropy(_logits(model, points), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _inputs(batch: int, num_points: int, data: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Points uniform in the unit ball, or the first shapes of an HDF5 file in the ModelNet release
    layout (``data (M, P, 3)``, ``label``): real surfaces, whose balls hold more distinct points."""
    if data is not None:
        import h5py
        import numpy as np

        with h5py.File(data, "r") as f:
            points = torch.from_numpy(np.asarray(f["data"][:batch, :num_points, :3], dtype=np.float32))
            labels = torch.from_numpy(np.asarray(f["label"][:batch]).reshape(-1).astype(np.int64)) % 40
        if points.shape[:2] != (batch, num_points):
            raise SystemExit(f"{data}: need {batch} shapes of {num_points} points, got {tuple(points.shape)}")
        return points, labels
    g = torch.Generator().manual_seed(0)
    points = torch.nn.functional.normalize(torch.randn(batch, num_points, 3, generator=g), dim=-1)
    points = points * torch.rand(batch, num_points, 1, generator=g) ** (1 / 3)  # uniform in the unit ball
    return points, torch.randint(40, (batch,), generator=g)


def _proc_status_mb(key: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (Linux). Unlike ``ru_maxrss``, ``VmHWM`` is not
    inherited from the parent that forked this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def memory_of(model: str, variant: str, mode: str, batch: int, num_points: int, ref_fps: str, data: str | None) -> dict:
    """Run in a fresh process: resident memory before, and peak over two steps of one variant."""
    points, labels = _inputs(batch, num_points, data)
    step = make_step(build(model, variant, ref_fps), mode, points, labels)
    baseline = _proc_status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    step()
    step()
    peak = _proc_status_mb("VmHWM")
    return {"peak_rss_mb": round(peak, 1), "before_steps_rss_mb": round(baseline, 1), "step_mb": round(peak - baseline, 1)}


def _memory_subprocess(args: argparse.Namespace, model: str, variant: str, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--memory-of", model, variant, mode, "--batch", str(args.batch),
           "--num-points", str(args.num_points), "--ref-fps", args.ref_fps, "--threads", str(torch.get_num_threads())]
    if args.data:
        cmd += ["--data", args.data]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def compare(args: argparse.Namespace, model: str, mode: str) -> dict:
    points, labels = _inputs(args.batch, args.num_points, args.data)
    ours, ref = build(model, "ours", args.ref_fps), build(model, "reference", args.ref_fps)
    with torch.no_grad():
        check = points[:2]
        logit_diff = (_logits(ours.eval(), check) - _logits(ref.eval(), check)).abs().max().item()
    steps = {"ours": make_step(ours, mode, points, labels), "reference": make_step(ref, mode, points, labels)}
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {"ours": [], "reference": []}
    for _ in range(args.rounds):  # A B A B
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    ratios = [r / o for r, o in zip(times["reference"], times["ours"])]
    record = {
        "bench": "baselines",
        "model": model,
        "mode": mode,
        "batch": args.batch,
        "points": args.num_points,
        "data": args.data or "uniform in the unit ball",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "malloc": malloc_mode(),
        "reference_fps": args.ref_fps if model == "pointnet2_ssg" else None,
        "rounds": args.rounds,
        "ms_ours": round(1000 * statistics.median(times["ours"]), 1),
        "ms_reference": round(1000 * statistics.median(times["reference"]), 1),
        "shapes_per_s_ours": round(args.batch / statistics.median(times["ours"]), 2),
        "shapes_per_s_reference": round(args.batch / statistics.median(times["reference"]), 2),
        "speedup_vs_reference": {
            "median": round(statistics.median(ratios), 2), "min": round(min(ratios), 2), "max": round(max(ratios), 2),
        },
        "eval_logit_max_abs_diff": logit_diff,
    }
    if not args.no_memory:
        record["peak_memory_mb"] = {v: _memory_subprocess(args, model, v, mode) for v in ("ours", "reference")}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["pointnet2_ssg", "dgcnn"], choices=["pointnet2_ssg", "dgcnn"])
    parser.add_argument("--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--num-points", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ref-fps", choices=["per_element", "batched"], default="batched")
    parser.add_argument("--data", default=None, metavar="H5", help="take the clouds from this ModelNet-layout HDF5 file")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant memory subprocesses")
    add_malloc_option(parser)
    parser.add_argument("--memory-of", nargs=3, metavar=("MODEL", "VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    apply_malloc(args)
    torch.set_num_threads(args.threads)
    if args.memory_of:
        print(json.dumps(memory_of(*args.memory_of, args.batch, args.num_points, args.ref_fps, args.data)))
        return
    for model in args.models:
        for mode in args.modes:
            print(json.dumps(compare(args, model, mode)), flush=True)


if __name__ == "__main__":
    main()
