"""The embedded default dataset: offline, deterministic, cached, learnable but not by trivial statistics."""

from __future__ import annotations

import numpy as np
import pytest

from pointnet_kit.data import make_default_dataset, open_dataset
from pointnet_kit.data import synthetic
from pointnet_kit.errors import DataError

POINTS, PER_CLASS = 256, 60  # a smaller version of the default (1024 points, 200 per class) keeps this fast
LEARN_EPOCHS = 6  # the slow learnability test: 6 epochs of 75 steps


@pytest.fixture(scope="session")
def embedded(cache_root):
    return {split: make_default_dataset(split, POINTS, cache_dir=cache_root, shapes_per_class=PER_CLASS) for split in ("train", "test")}


def test_classes_counts_and_unit_sphere(embedded):
    train, test = embedded["train"], embedded["test"]
    assert train.class_names == synthetic.CLASS_NAMES and len(train.class_names) >= 10
    assert np.all(train.class_counts() == PER_CLASS)
    assert np.all(test.class_counts() == PER_CLASS // 4)
    assert train.points.shape == (len(train), POINTS, 3) and train.points.dtype == np.float32
    radius = np.linalg.norm(train.points, axis=2).max(1)
    assert np.all(np.abs(radius - 1) < 0.1)  # unit sphere plus sampling noise
    assert np.abs(train.points.mean(1)).max() < 0.01
    np.testing.assert_allclose(np.linalg.norm(train.normals, axis=2), 1, atol=1e-4)
    assert not set(train.ids) & set(test.ids) and train.ids[0] == "box/box_0001"
    assert test.ids[0] == f"box/box_{PER_CLASS + 1:04d}"
    assert not np.array_equal(train.points[0], test.points[0])


def test_deterministic_and_seeded():
    a = synthetic.generate_shape("chair", 128, seed=5)
    b = synthetic.generate_shape("chair", 128, seed=5)
    c = synthetic.generate_shape("chair", 128, seed=6)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_cache_is_reused_and_open_dataset_serves_it(embedded, cache_root, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(synthetic, "generate_split", fail)
    again = make_default_dataset("test", num_points=POINTS, cache_dir=cache_root, shapes_per_class=PER_CLASS)
    np.testing.assert_array_equal(again.points, embedded["test"].points)
    assert (cache_root / "embedded").is_dir()


def test_open_dataset_default_serves_a_prefix(cache_root, monkeypatch):
    monkeypatch.setattr(synthetic, "SHAPES_PER_CLASS", {"train": 3, "test": 2})
    monkeypatch.setattr(synthetic, "VERSION", "test-small")
    ds = open_dataset("default", split="test", num_points=100, use_normals=True)
    x, y = ds[0]["points"], ds[0]["labels"]
    assert x.shape == (100, 6) and ds.num_classes == len(synthetic.CLASS_NAMES) and len(ds) == 2 * ds.num_classes
    with pytest.raises(DataError, match="splits train and test"):
        open_dataset("embedded", split="val")


def _stats(points: np.ndarray) -> np.ndarray:
    """Per-shape trivial statistics: coordinate mean, std and bounding-box extent."""
    return np.concatenate([points.mean(1), points.std(1), points.max(1) - points.min(1)], axis=1)


def test_trivial_statistics_do_not_solve_it(embedded):
    """A nearest-centroid classifier on per-shape coordinate statistics stays far from what PointNet
    reaches (> 90 %): the class is in the shape, not in its size or spread."""
    train, test = embedded["train"], embedded["test"]
    f_train, f_test = _stats(train.points), _stats(test.points)
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-9
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    centroids = np.stack([f_train[train.labels == k].mean(0) for k in range(train.num_classes)])
    pred = ((f_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    accuracy = (pred == test.labels).mean()
    chance = 1 / train.num_classes
    assert accuracy < 0.4, f"trivial statistics reach {accuracy:.2f}"
    assert accuracy > chance  # the statistic is not broken: it does carry a little signal


@pytest.mark.slow
def test_a_short_pointnet_run_learns_it(cache_root):
    """What the trivial statistics cannot do, a PointNet does after a short CPU run (minutes)."""
    import torch

    from pointnet_kit.data import build_batch_transforms
    from pointnet_kit.models import create_model

    train, test = (make_default_dataset(split, POINTS, cache_dir=cache_root) for split in ("train", "test"))
    x, y = train.as_tensors().values()
    xt, yt = test.as_tensors().values()
    model = create_model("pointnet", num_classes=train.num_classes, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    augment = build_batch_transforms([{"name": "rotate_z"}, {"name": "scale"}, {"name": "jitter"}], seed=0)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(LEARN_EPOCHS):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x) - 31, 32):
            idx = order[start : start + 32]
            loss = torch.nn.functional.cross_entropy(model(augment(x[idx]))["logits"], y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(xt)["logits"].argmax(1) == yt).float().mean().item()
    assert accuracy > 0.85, f"PointNet reached only {accuracy:.2f}"
