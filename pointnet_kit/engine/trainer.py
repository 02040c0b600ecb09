"""The training loop: data on the device, batched augmentation, AMP, checkpoints, honest metrics."""

from __future__ import annotations

import contextlib
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..data.transforms import build_batch_transforms
from ..errors import CheckpointError, ConfigError
from ..models import PointNetClassifier, create_model
from ..utils import resolve_device, seed_everything
from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, augmentation_specs, config_from_dict
from .datasets import load_split
from .distributed import DistInfo, ShardedBatchSampler, all_reduce_sum, cleanup, init_distributed
from ..tasks.classification import confusion_matrix, summarize

Logger = Callable[[str], None]


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast as configured; ``auto`` means bf16 on CUDA and nothing elsewhere."""
    if amp == "auto":
        amp = "bf16" if device.type == "cuda" else "off"
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def lr_factor(config: Config, epoch: int) -> float:
    """Multiplier of ``optim.lr`` for ``epoch`` (0-based), floored at ``schedule.min_lr``."""
    sched, base = config.schedule, config.optim.lr
    if epoch < sched.warmup_epochs:
        return (epoch + 1) / (sched.warmup_epochs + 1)
    if sched.name == "step":
        factor = sched.gamma ** ((epoch - sched.warmup_epochs) // sched.step_size)
    elif sched.name == "cosine":
        span = max(1, config.train.epochs - sched.warmup_epochs)
        progress = (epoch - sched.warmup_epochs) / span
        floor = min(sched.min_lr / base, 1.0)
        factor = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    else:
        factor = 1.0
    return max(factor, min(sched.min_lr / base, 1.0)) if sched.name != "constant" else factor


def bn_momentum_at(config: Config, epoch: int) -> float | None:
    """PointNet's BatchNorm decay (0.5 -> 0.99) as PyTorch momentum (0.5 -> 0.01), per epoch."""
    t = config.train
    if t.bn_momentum is None:
        return None
    return max(t.bn_momentum * t.bn_momentum_decay ** (epoch // t.bn_momentum_step), t.bn_momentum_min)


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    o = config.optim
    if o.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


def classification_loss(out: dict[str, torch.Tensor], labels: torch.Tensor, config: Config) -> torch.Tensor:
    """Cross entropy (with label smoothing) + the model's own (already weighted) loss terms."""
    loss = F.cross_entropy(out["logits"].float(), labels, label_smoothing=config.train.label_smoothing)
    return loss + sum(out["losses"].values())


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    points: torch.Tensor,
    batch_size: int = 256,
    amp: str = "auto",
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Logits for every cloud, in eval mode, batched. ``points: (M, N, C)`` on the model's device.

    Returns ``(M, num_classes)`` float32 on the same device.
    """
    device = points.device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(points), batch_size):
        batch = points[start : start + batch_size]
        if transform is not None:
            batch = transform(batch)
        with autocast_context(device, amp):
            out.append(model(batch)["logits"].float())
    model.train(was_training)
    if not out:
        return torch.zeros(0, getattr(model, "num_classes", 0), device=device)
    return torch.cat(out)


def _versions() -> dict[str, str]:
    return {
        "pointnet_kit": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda or "none",
    }


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


class Trainer:
    """Trains a PointNet classifier as ``config`` says, writing everything to ``out_dir``.

    Files: ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per epoch), ``checkpoint_last.pt``,
    ``checkpoint_best.pt`` (best on the validation split), ``summary.json``.
    """

    def __init__(self, config: Config, out_dir: str | Path, log: Logger = print) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.runtime.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.log = log if self.dist.is_main else (lambda _msg: None)
        if config.runtime.num_threads:
            torch.set_num_threads(config.runtime.num_threads)
        if config.train.batch_size % self.dist.world_size:
            raise ConfigError(
                f"train.batch_size={config.train.batch_size} must be divisible by the {self.dist.world_size} processes"
            )

        seed_everything(config.runtime.seed)
        self.train_set = load_split(config.data, "train")
        self.val_set = load_split(config.data, "val")
        self.class_names = self.train_set.class_names
        n_train, batch = len(self.train_set), config.train.batch_size
        if n_train < 2:
            raise ConfigError(f"the training split has {n_train} shape(s); BatchNorm needs at least 2")
        if not config.train.drop_last and n_train % batch == 1:
            raise ConfigError(
                f"the last training batch would hold 1 shape ({n_train} % {batch} == 1), which BatchNorm cannot "
                "train on: set train.drop_last=true or change train.batch_size"
            )
        if config.train.drop_last and n_train < batch:
            raise ConfigError(f"train.batch_size={batch} is larger than the training split ({n_train} shapes)")

        # The whole dataset lives on the device: no per-sample Python in the training step.
        train_batch, val_batch = self.train_set.as_tensors(self.device), self.val_set.as_tensors(self.device)
        self.train_points, self.train_labels = train_batch["points"], train_batch["labels"]
        self.val_points, self.val_labels = val_batch["points"], val_batch["labels"]
        self.augment = build_batch_transforms(augmentation_specs(config))

        model = create_model(
            config.model.name,
            seed=config.runtime.seed,
            num_classes=self.train_set.num_classes,
            in_channels=self.train_set.in_channels,
            **config.model.kwargs,
        )
        if not isinstance(model, PointNetClassifier):
            raise ConfigError(f"model {config.model.name!r} is not a classifier; the engine trains classifiers")
        self.model = model.to(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            # BatchNorm statistics over the global batch (SyncBatchNorm is CUDA-only; gloo keeps per-process BN).
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            self.model.model_name, self.model.model_kwargs = model.model_name, model.model_kwargs
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(config, e))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.runtime.amp == "fp16")
        self.sampler = ShardedBatchSampler(n_train, batch, self.dist, config.runtime.seed, config.train.drop_last)
        self.step_model: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.step_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if config.runtime.compile:
            self.step_model = torch.compile(self.step_model)

        self.start_epoch = 0
        self.best: dict[str, Any] = {"epoch": None, "value": -1.0}
        self.history: list[dict[str, Any]] = []

    # --- checkpoints ---------------------------------------------------------------------------

    def _checkpoint_extra(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "class_names": self.class_names,
            "config": self.config.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "best": dict(self.best),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.device),
            "versions": _versions(),
        }

    def resume_from(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, RNG and history from ``checkpoint_last.pt``."""
        path = Path(path)
        ckpt = load_checkpoint(path / "checkpoint_last.pt" if path.is_dir() else path, map_location=self.device)
        if ckpt["model_name"] != self.config.model.name:
            raise CheckpointError(f"cannot resume: checkpoint holds {ckpt['model_name']!r}, config says {self.config.model.name!r}")
        if list(ckpt.get("class_names", [])) != self.class_names:
            raise CheckpointError("cannot resume: the checkpoint's classes differ from the data's")
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{path} has no optimizer state; resume needs a checkpoint_last.pt")
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt.get("scaler", {}))
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"].cpu(), self.device)
        self.start_epoch = int(ckpt["epoch"])
        self.best = dict(ckpt.get("best", self.best))
        metrics_path = self.out_dir / "metrics.jsonl"
        if metrics_path.is_file():
            lines = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
            self.history = [m for m in lines if m["epoch"] <= self.start_epoch]
        self.log(f"resumed from {path} at epoch {self.start_epoch}")

    # --- one epoch -----------------------------------------------------------------------------

    def _set_bn_momentum(self, epoch: int) -> None:
        momentum = bn_momentum_at(self.config, epoch)
        if momentum is None:
            return
        for module in self.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum

    def train_epoch(self, epoch: int) -> dict[str, float]:
        cfg, device = self.config, self.device
        self.step_model.train()
        self._set_bn_momentum(epoch)
        # Reseeding per epoch makes a resumed run draw exactly what an uninterrupted one would.
        torch.manual_seed(cfg.runtime.seed * 1_000_003 + epoch * 101 + self.dist.rank)
        aug_generator = torch.Generator(device).manual_seed(cfg.runtime.seed * 7919 + epoch * 31 + self.dist.rank)
        batches = self.sampler.batches(epoch)
        sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss * n, correct, n
        start = time.perf_counter()
        progress = _progress(len(batches), f"epoch {epoch + 1}/{cfg.train.epochs}", cfg.runtime.progress and self.dist.is_main)
        for indices in batches:
            indices = indices.to(device, non_blocking=True)
            points = self.augment(self.train_points[indices], generator=aug_generator)  # (b, N, C)
            labels = self.train_labels[indices]
            with autocast_context(device, cfg.runtime.amp):
                out = self.step_model(points)
                loss = classification_loss(out, labels, cfg)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = labels.shape[0]
            sums += torch.stack([loss.detach().double() * n, (out["logits"].argmax(1) == labels).sum().double(), torch.tensor(float(n), device=device, dtype=torch.float64)])
            progress.update(1)
        progress.close()
        all_reduce_sum(sums, self.dist)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        loss_sum, correct, count = sums.tolist()
        return {
            "train_loss": loss_sum / max(count, 1),
            "train_acc": correct / max(count, 1),
            "train_seconds": seconds,
            "shapes_per_s": count / seconds if seconds > 0 else float("nan"),
        }

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """OA, mean class accuracy and loss on the validation split (sharded across processes)."""
        rank, world = self.dist.rank, self.dist.world_size
        points, labels = self.val_points[rank::world], self.val_labels[rank::world]
        logits = predict_logits(self.model, points, self.config.train.eval_batch_size, self.config.runtime.amp)
        num_classes = len(self.class_names)
        confusion = confusion_matrix(logits.argmax(1), labels, num_classes) if len(labels) else torch.zeros(
            num_classes, num_classes, dtype=torch.long, device=self.device
        )
        loss_sum = F.cross_entropy(logits, labels, reduction="sum") if len(labels) else torch.zeros((), device=self.device)
        all_reduce_sum(confusion, self.dist)
        all_reduce_sum(loss_sum, self.dist)
        stats = summarize(confusion, self.class_names)
        return {"val_loss": float(loss_sum) / max(stats["num_shapes"], 1), "val_oa": stats["oa"], "val_macc": stats["macc"], "_stats": stats}

    # --- the run ---------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        cfg = self.config
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(cfg.to_yaml())
        writer = _tensorboard(self.out_dir) if cfg.runtime.tensorboard and self.dist.is_main else None
        self.log(
            f"training {cfg.model.name} on {cfg.data.root}: {len(self.train_set)} train / {len(self.val_set)} val shapes "
            f"(stratified {cfg.data.val_fraction:.0%} of train), {len(self.class_names)} classes, device {self.device}"
            + (f", {self.dist.world_size} processes" if self.dist.enabled else "")
        )
        wall = time.perf_counter()
        for epoch in range(self.start_epoch, cfg.train.epochs):
            lr = self.optimizer.param_groups[0]["lr"]
            train_stats = self.train_epoch(epoch)
            val = self.validate()
            self.scheduler.step()
            record = {"epoch": epoch + 1, "lr": lr, **train_stats, **{k: v for k, v in val.items() if k != "_stats"}}
            self.history.append(record)
            value = record[cfg.train.select_metric or "val_oa"]
            improved = value > self.best["value"]
            if improved:
                self.best = {"epoch": epoch + 1, "value": value, "metric": cfg.train.select_metric or "val_oa"}
            if self.dist.is_main:
                with open(self.out_dir / "metrics.jsonl", "w") as f:
                    f.writelines(json.dumps(m) + "\n" for m in self.history)
                extra = self._checkpoint_extra(epoch + 1, record)
                save_checkpoint(self.out_dir / "checkpoint_last.pt", self.model, **extra)
                if improved:
                    save_checkpoint(self.out_dir / "checkpoint_best.pt", self.model, **extra)
                if writer is not None:
                    for key, v in record.items():
                        if key != "epoch":
                            writer.add_scalar(key, v, epoch + 1)
            self.log(
                f"epoch {epoch + 1:>3}/{cfg.train.epochs}  loss {record['train_loss']:.4f}  train acc {record['train_acc']:.4f}  "
                f"val OA {record['val_oa']:.4f}  val mAcc {record['val_macc']:.4f}  lr {lr:.2e}  "
                f"{record['train_seconds']:.1f}s  {record['shapes_per_s']:.0f} shapes/s" + ("  *" if improved else "")
            )
        wall = time.perf_counter() - wall
        summary = self._summary(wall)
        if self.dist.is_main:
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            if writer is not None:
                writer.close()
        cleanup(self.dist)
        return summary

    def _summary(self, wall: float) -> dict[str, Any]:
        cfg, last = self.config, self.history[-1] if self.history else {}
        best = next((m for m in self.history if m["epoch"] == self.best.get("epoch")), {})
        throughput = [m["shapes_per_s"] for m in self.history[1:] or self.history]
        pick = lambda m: {k: m.get(k) for k in ("epoch", "val_oa", "val_macc", "val_loss", "train_acc", "train_loss")}  # noqa: E731
        return {
            "model": cfg.model.name,
            "data": cfg.data.root,
            "classes": len(self.class_names),
            "splits": {
                "train": {"shapes": len(self.train_set), "source": "train files minus the validation split"},
                "val": {
                    "shapes": len(self.val_set),
                    "source": f"stratified {cfg.data.val_fraction:.0%} of the train files, seed {cfg.data.split_seed}",
                },
                "test": "not used: no number in this summary comes from a test split",
            },
            "epochs": len(self.history),
            "selected_by": f"{cfg.train.select_metric} on the validation split",
            "best": pick(best),
            "final": pick(last),
            "wall_time_s": round(wall, 2),
            "train_shapes_per_s": float(np.median(throughput)) if throughput else None,
            "device": str(self.device) + (f" x{self.dist.world_size}" if self.dist.enabled else ""),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor() or platform.machine(),
            "versions": _versions(),
        }


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None turns the bar off when stderr is not a terminal.
    return tqdm(total=total, desc=desc, leave=False, disable=None if enabled else True, file=sys.stderr)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except (ImportError, ModuleNotFoundError):
        return None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def train(
    config: Config,
    out_dir: str | Path,
    resume: str | Path | None = None,
    log: Logger = print,
) -> dict[str, Any]:
    """Train as ``config`` says into ``out_dir`` (resuming from ``resume`` if given); return the summary."""
    trainer = Trainer(config, out_dir, log=log)
    if resume is not None:
        trainer.resume_from(resume)
    return trainer.fit()


def config_for_resume(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a run was started with (from its ``checkpoint_last.pt``), plus overrides (e.g. more epochs)."""
    ckpt = load_checkpoint(Path(run_dir) / "checkpoint_last.pt")
    return config_from_dict(ckpt.get("config") or {}, overrides)
