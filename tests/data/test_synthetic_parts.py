"""The embedded part-segmentation dataset: every point labelled with its part, offline, cached,
and not given away by a per-point baseline on height and distance from the axis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pointnet_kit.data import open_dataset
from pointnet_kit.data import synthetic_parts as sp
from pointnet_kit.data.transforms import build_batch_transforms

POINTS, PER_CATEGORY = 256, 60


@pytest.fixture(scope="session")
def parts(cache_root):
    return {
        split: sp.make_default_parts_dataset(split, POINTS, cache_dir=cache_root, shapes_per_category=PER_CATEGORY)
        for split in ("train", "test")
    }


def test_every_point_has_a_part_of_its_category(parts):
    train = parts["train"]
    assert train.class_names == sp.CATEGORIES and len(sp.PART_NAMES) == sum(len(v) for v in sp.CATEGORY_PART_NAMES.values())
    assert train.part_labels.shape == (len(train), POINTS) and np.all(train.class_counts() == PER_CATEGORY)
    for label, category in enumerate(sp.CATEGORIES):
        labels = train.part_labels[train.labels == label]
        assert set(np.unique(labels)) == set(sp.CATEGORY_PARTS[category]), category  # every part occurs, no other
    spec = train.spec
    assert spec.task == "part_segmentation" and spec.part_names == sp.PART_NAMES and spec.category_parts == sp.CATEGORY_PARTS
    np.testing.assert_allclose(np.linalg.norm(train.normals, axis=2), 1, atol=1e-4)
    assert not set(train.ids) & set(parts["test"].ids)


def test_parts_are_where_they_belong():
    # a standing lamp's shade is above its base; a table top is above its legs (before the random rotation about z)
    for seed in range(6):
        points, _, labels = sp.generate_part_shape("Table", 512, seed=seed)
        top, leg = (sp.PART_NAMES.index(f"Table/{p}") for p in ("top", "leg"))
        assert points[labels == top, 2].mean() > points[labels == leg, 2].mean()
    a, b = sp.generate_part_shape("Chair", 128, seed=3), sp.generate_part_shape("Chair", 128, seed=3)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_open_dataset_default_parts(cache_root, monkeypatch):
    monkeypatch.setattr(sp, "SHAPES_PER_CATEGORY", {"train": 2, "test": 1})
    monkeypatch.setattr(sp, "VERSION", "test-small")
    ds = open_dataset("default_parts", "test", num_points=100, use_normals=True)
    batch = ds.as_tensors()
    assert batch["points"].shape == (6, 100, 6) and batch["part_labels"].shape == (6, 100)
    assert ds.spec.source == "default_parts (embedded_parts)" and ds.spec.up_axis == "z" and ds.spec.in_channels == 6


# --- the task is not given away ---------------------------------------------------------------


def instance_miou(pred: np.ndarray, truth: np.ndarray, labels: np.ndarray) -> float:
    """ShapeNetPart's instance mIoU: per shape, the mean IoU over its category's parts (a part absent
    in both prediction and truth counts 1), averaged over shapes."""
    scores = []
    for p, t, label in zip(pred, truth, labels):
        ious = []
        for k in sp.CATEGORY_PARTS[sp.CATEGORIES[label]]:
            union = np.sum((p == k) | (t == k))
            ious.append(1.0 if union == 0 else np.sum((p == k) & (t == k)) / union)
        scores.append(np.mean(ious))
    return float(np.mean(scores))


def height_radius_baseline(train, test, bins: int = 12) -> np.ndarray:
    """Per category, the majority part of each (height, distance from the vertical axis) cell of the
    training points; rotation about z cannot fool it."""

    def cells(points):
        z = points[..., 2]
        r = np.linalg.norm(points[..., :2] - points[..., :2].mean(1, keepdims=True), axis=-1)
        return np.clip(((z + 1) / 2 * bins).astype(int), 0, bins - 1), np.clip((r * bins).astype(int), 0, bins - 1)

    zi, ri = cells(train.points)
    tables = {}
    for label in range(len(sp.CATEGORIES)):
        rows = train.labels == label
        counts = np.zeros((bins, bins, len(sp.PART_NAMES)))
        np.add.at(counts, (zi[rows].ravel(), ri[rows].ravel(), train.part_labels[rows].ravel()), 1)
        table = counts.argmax(-1)
        table[counts.sum(-1) == 0] = np.bincount(train.part_labels[rows].ravel()).argmax()
        tables[label] = table
    zi, ri = cells(test.points)
    return np.stack([tables[label][zi[i], ri[i]] for i, label in enumerate(test.labels)])


def test_the_height_radius_baseline_is_far_from_solving_it(parts):
    train, test = parts["train"], parts["test"]
    fitted_on_train = instance_miou(height_radius_baseline(train, train), train.part_labels, train.labels)
    held_out = instance_miou(height_radius_baseline(train, test), test.part_labels, test.labels)
    assert held_out < 0.7 and fitted_on_train < 0.72  # it cannot even fit its own training data


class TinyPartNet(nn.Module):
    """A PointNet-style segmenter small enough for a test: per-point MLP, global max, category one-hot."""

    def __init__(self, num_parts: int, num_categories: int) -> None:
        super().__init__()
        self.num_categories = num_categories
        self.local = nn.Sequential(nn.Conv1d(3, 64, 1), nn.BatchNorm1d(64), nn.ReLU(), nn.Conv1d(64, 128, 1), nn.BatchNorm1d(128), nn.ReLU())
        self.pool = nn.Sequential(nn.Conv1d(128, 256, 1), nn.BatchNorm1d(256), nn.ReLU())
        self.head = nn.Sequential(nn.Conv1d(128 + 256 + num_categories, 128, 1), nn.BatchNorm1d(128), nn.ReLU(), nn.Conv1d(128, num_parts, 1))

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """points (B, N, 3), category (B,) -> logits (B, N, parts)."""
        local = self.local(points.transpose(1, 2))
        n = local.shape[2]
        pooled = self.pool(local).amax(2, keepdim=True).expand(-1, -1, n)
        onehot = nn.functional.one_hot(category, self.num_categories).float().unsqueeze(2).expand(-1, -1, n)
        return self.head(torch.cat([local, pooled, onehot], 1)).transpose(1, 2)


@pytest.mark.slow
def test_a_trained_network_beats_the_baseline_clearly(parts):
    torch.manual_seed(0)
    train, test = parts["train"], parts["test"]
    model = TinyPartNet(len(sp.PART_NAMES), len(sp.CATEGORIES))
    optimizer = torch.optim.Adam(model.parameters(), 2e-3)
    augment = build_batch_transforms([{"name": "rotate_up"}, {"name": "jitter", "sigma": 0.01}, {"name": "shuffle"}], up_axis="z")
    data, generator = train.as_tensors(), torch.Generator().manual_seed(0)
    for _ in range(25):
        model.train()
        for rows in torch.randperm(len(train), generator=generator).split(24):
            batch = augment({k: v[rows] for k, v in data.items()}, generator)
            logits = model(batch["points"], batch["labels"])
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch["part_labels"].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    held_out = test.as_tensors()
    allowed = torch.full((len(sp.CATEGORIES), len(sp.PART_NAMES)), float("-inf"))
    for label, category in enumerate(sp.CATEGORIES):
        allowed[label, sp.CATEGORY_PARTS[category]] = 0
    with torch.no_grad():
        logits = model(held_out["points"], held_out["labels"]) + allowed[held_out["labels"]].unsqueeze(1)
    network = instance_miou(logits.argmax(-1).numpy(), test.part_labels, test.labels)
    baseline = instance_miou(height_radius_baseline(train, test), test.part_labels, test.labels)
    print(f"instance mIoU: baseline {baseline:.3f}, tiny network {network:.3f}")
    assert network > baseline + 0.1
