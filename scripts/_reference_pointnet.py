"""A plain-PyTorch PointNet classifier and training step written the way the popular ports write them.

The yardstick for ``bench_train.py`` / ``bench_infer.py --vs-reference``; not part of the package.
It follows the structure of fxia22/pointnet.pytorch and yanx27/Pointnet_Pointnet2_pytorch (written
here from their published description, not copied):

- every 1x1 layer is ``Conv1d(bias=True) -> BatchNorm1d -> ReLU`` on ``(B, C, N)``; the last encoder
  layer has BatchNorm but no ReLU; max pool with ``torch.max(x, 2, keepdim=True)[0]``;
- ``STN3d``/``STNkd``: the same MLP, FC 512 -> 256 -> k*k, plus an identity built on the host each
  call and added; applied with ``torch.bmm`` after transposing to ``(B, N, C)``;
- the head: FC 512 -> BN -> ReLU, FC 256 -> dropout -> BN -> ReLU, FC k, ``log_softmax``;
  loss ``nll_loss + 0.001 * mean_b ||A A^T - I||_F`` (the ports' regularizer: a norm, not squared);
- Adam(lr=1e-3, betas=(0.9, 0.999)) (yanx27 adds weight_decay=1e-4);
- augmentation in NumPy as each port does it: fxia22 per sample inside ``Dataset.__getitem__``
  (normalise, random rotation about the up axis, Gaussian jitter sigma 0.02), batched by a
  ``DataLoader``; yanx27 per batch in the training loop (random point dropout, scale, shift: Python
  loops over the batch) after the ``DataLoader`` (whose ``__getitem__`` normalises each cloud).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class STNkd(nn.Module):
    """T-Net: ``(B, k, N) -> (B, k, k)``."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k
        self.conv1, self.bn1 = nn.Conv1d(k, 64, 1), nn.BatchNorm1d(64)
        self.conv2, self.bn2 = nn.Conv1d(64, 128, 1), nn.BatchNorm1d(128)
        self.conv3, self.bn3 = nn.Conv1d(128, 1024, 1), nn.BatchNorm1d(1024)
        self.fc1, self.bn4 = nn.Linear(1024, 512), nn.BatchNorm1d(512)
        self.fc2, self.bn5 = nn.Linear(512, 256), nn.BatchNorm1d(256)
        self.fc3 = nn.Linear(256, k * k)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.size(0)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2, keepdim=True)[0].view(-1, 1024)
        x = self.relu(self.bn4(self.fc1(x)))
        x = self.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)
        # The ports build the identity in NumPy on every call and ship it to the device.
        eye = torch.from_numpy(np.eye(self.k, dtype=np.float32).flatten()).view(1, -1).repeat(batch, 1).to(x.device)
        return (x + eye).view(-1, self.k, self.k)


class ReferenceEncoder(nn.Module):
    """``(B, 3, N)`` -> global feature ``(B, 1024)``, input transform, feature transform."""

    def __init__(self, feature_transform: bool = True) -> None:
        super().__init__()
        self.stn = STNkd(3)
        self.conv1, self.bn1 = nn.Conv1d(3, 64, 1), nn.BatchNorm1d(64)
        self.conv2, self.bn2 = nn.Conv1d(64, 128, 1), nn.BatchNorm1d(128)
        self.conv3, self.bn3 = nn.Conv1d(128, 1024, 1), nn.BatchNorm1d(1024)
        self.fstn = STNkd(64) if feature_transform else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        trans = self.stn(x)
        x = torch.bmm(x.transpose(2, 1), trans).transpose(2, 1)
        x = F.relu(self.bn1(self.conv1(x)))
        trans_feat = None
        if self.fstn is not None:
            trans_feat = self.fstn(x)
            x = torch.bmm(x.transpose(2, 1), trans_feat).transpose(2, 1)
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2, keepdim=True)[0].view(-1, 1024)
        return x, trans, trans_feat


class ReferencePointNet(nn.Module):
    """The ports' ``PointNetCls``: ``(B, 3, N)`` -> log-probabilities ``(B, k)``, transforms."""

    def __init__(self, k: int = 40, feature_transform: bool = True, dropout: float = 0.3) -> None:
        super().__init__()
        self.feat = ReferenceEncoder(feature_transform)
        self.fc1, self.bn1 = nn.Linear(1024, 512), nn.BatchNorm1d(512)
        self.fc2, self.bn2 = nn.Linear(512, 256), nn.BatchNorm1d(256)
        self.fc3 = nn.Linear(256, k)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x, trans, trans_feat = self.feat(x)
        x = F.relu(self.bn1(self.fc1(x)))
        x = F.relu(self.bn2(self.dropout(self.fc2(x))))
        return F.log_softmax(self.fc3(x), dim=1), trans, trans_feat


def feature_transform_regularizer(trans: torch.Tensor) -> torch.Tensor:
    """The ports' ``mean_b ||A A^T - I||_F`` (identity built per call)."""
    d = trans.size(1)
    eye = torch.eye(d, device=trans.device)[None, :, :]
    return torch.mean(torch.norm(torch.bmm(trans, trans.transpose(2, 1)) - eye, dim=(1, 2)))


# --- data pipelines ------------------------------------------------------------------------------


def _normalize(cloud: np.ndarray) -> np.ndarray:
    cloud = cloud - cloud.mean(axis=0, keepdims=True)
    return cloud / np.max(np.sqrt((cloud**2).sum(axis=1)))


class _Fxia22Dataset(torch.utils.data.Dataset):
    """Per-sample NumPy pipeline in ``__getitem__``: normalise, rotate about the up axis, jitter."""

    def __init__(self, clouds: np.ndarray, labels: np.ndarray) -> None:
        self.clouds, self.labels = clouds, labels

    def __len__(self) -> int:
        return len(self.clouds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cloud = _normalize(self.clouds[i])
        theta = np.random.uniform(0, np.pi * 2)
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        cloud[:, [0, 2]] = cloud[:, [0, 2]].dot(rotation)
        cloud = cloud + np.random.normal(0, 0.02, size=cloud.shape)
        return torch.from_numpy(cloud.astype(np.float32)), torch.from_numpy(np.array([self.labels[i]], dtype=np.int64))


class _Yanx27Dataset(_Fxia22Dataset):
    """``__getitem__`` only normalises; augmentation happens on the batch in the training loop."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        cloud = _normalize(self.clouds[i]).astype(np.float32)
        return torch.from_numpy(cloud), torch.tensor(self.labels[i], dtype=torch.int64)


def _yanx27_batch_augment(points: np.ndarray) -> np.ndarray:
    """yanx27's provider functions: per-cloud point dropout, scale and shift, loops over the batch."""
    for b in range(points.shape[0]):
        ratio = np.random.random() * 0.875
        drop = np.where(np.random.random(points.shape[1]) <= ratio)[0]
        if len(drop) > 0:
            points[b, drop, :] = points[b, 0, :]
    scales = np.random.uniform(0.8, 1.25, points.shape[0])
    for b in range(points.shape[0]):
        points[b, :, :3] *= scales[b]
    shifts = np.random.uniform(-0.1, 0.1, (points.shape[0], 3))
    for b in range(points.shape[0]):
        points[b, :, :3] += shifts[b, :]
    return points


def _forever(loader: torch.utils.data.DataLoader) -> Iterator:
    while True:
        yield from loader


STYLES = ("fxia22", "yanx27")


def reference_train_step(
    style: str, clouds: np.ndarray, labels: np.ndarray, batch: int, seed: int = 0, num_classes: int = 40
) -> tuple[Callable[[], float], ReferencePointNet]:
    """One port's full training step (data loading + augmentation + forward + loss + backward + Adam).

    Returns ``(step, model)``; ``step()`` returns the loss as a float, as the ports' loops read it.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = ReferencePointNet(num_classes, feature_transform=True, dropout=0.3 if style == "fxia22" else 0.4).train()
    weight_decay = 0.0 if style == "fxia22" else 1e-4
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=weight_decay)
    dataset = (_Fxia22Dataset if style == "fxia22" else _Yanx27Dataset)(clouds, labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0, drop_last=True)
    batches = _forever(loader)

    def step() -> float:
        points, target = next(batches)
        if style == "fxia22":
            target = target[:, 0]
        else:
            points = torch.Tensor(_yanx27_batch_augment(points.numpy()))
        points = points.transpose(2, 1)
        optimizer.zero_grad()
        model.train()
        pred, _trans, trans_feat = model(points)
        loss = F.nll_loss(pred, target) + 0.001 * feature_transform_regularizer(trans_feat)
        loss.backward()
        optimizer.step()
        pred.data.max(1)[1].eq(target.data).cpu().sum()  # the ports count correct predictions per step
        return loss.item()

    return step, model


@torch.no_grad()
def reference_predict(model: ReferencePointNet, points: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The ports' evaluation loop: eval mode, ``(B, N, 3)`` -> transpose -> model, log-probabilities."""
    model.eval()
    out = [model(points[i : i + batch_size].transpose(2, 1))[0] for i in range(0, len(points), batch_size)]
    return torch.cat(out)
