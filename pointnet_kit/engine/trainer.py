"""The training loop: data on the device, batched augmentation, AMP, checkpoints, honest metrics."""

from __future__ import annotations

import errno
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data import PointCloudDataset
from ..data.record import DataSpec
from ..data.transforms import build_batch_transforms
from ..errors import CheckpointError, ConfigError, NonFiniteError, PointNetKitError
from ..models import create_model
from ..tasks import Task, get_task
from ..utils import TMP_SUFFIX, atomic_write_bytes, atomic_write_text, remove_orphan_tmp, resolve_device, seed_everything
from .checkpoint import checkpoint_config, data_spec_for, load_checkpoint, non_finite_tensors, save_checkpoint
from .config import Config, augmentation_specs, config_from_dict
from .datasets import load_split
from .distributed import DistInfo, ShardedBatchSampler, all_reduce_sum, cleanup, init_distributed
from .evaluate import evaluate_batch
from .inference import autocast_context, category_input, predict_logits  # noqa: F401  (predict_logits: old import path)

Logger = Callable[[str], None]
Batch = dict[str, torch.Tensor]


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


def run_spec(config: Config, dataset: PointCloudDataset) -> DataSpec:
    """The run's :class:`DataSpec`: the dataset's own when its loader set one, else from the config."""
    if dataset.spec is not None:
        return dataset.spec
    part_names = None
    if dataset.part_labels is not None:
        part_names = [f"part{i}" for i in range(int(dataset.part_labels.max()) + 1)]
    task = "part_segmentation" if part_names else "classification"
    return data_spec_for(config.data, task, dataset.class_names, dataset.num_points, part_names)


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


RUN_MARK = "# pointnet-kit run config"
"""First line of a run's ``config.yaml``: what tells a run folder of ours from a user's folder."""
LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a pointnet-kit run folder (its ``config.yaml`` was written by a training)."""
    config = Path(path) / "config.yaml"
    try:
        with open(config, "rb") as f:
            return f.read(len(RUN_MARK)).decode("utf-8", "replace") == RUN_MARK
    except OSError:
        return False


def _is_orphan_tmp(path: Path) -> bool:
    """A temp file left by a killed atomic write (ours, safe to delete)."""
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX) and path.is_file()


def check_out_dir(out: Path, continuing: bool) -> None:
    """Refuse an output folder that would mix runs or overwrite a user's files; create it if missing.

    A new run goes into a missing or empty folder only (a folder holding a run needs ``--resume``);
    ``continuing`` a run needs that run's folder. Fails fast, before any data is loaded.
    """
    if continuing:
        if not (out / LAST).is_file() and not is_run_dir(out):
            raise PointNetKitError(f"nothing to resume in {out}: no {LAST} and no config.yaml of a pointnet-kit run")
    elif out.exists() and not out.is_dir():
        raise PointNetKitError(f"--out {out} is a file; give a folder for the run")
    elif out.is_dir():
        if (out / LAST).exists() or is_run_dir(out):
            raise PointNetKitError(f"{out} already holds a run; continue it with --resume {out}, or choose a new --out")
        others = sorted(p.name for p in out.iterdir() if not _is_orphan_tmp(p))
        if others:
            raise PointNetKitError(
                f"--out {out} is a folder that is not a pointnet-kit run and not empty (it holds {others[0]!r}"
                f"{f' and {len(others) - 1} more' if len(others) > 1 else ''}); choose a new or empty folder"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)  # a concurrent run may make it too: config.yaml decides
    if not os.access(out, os.W_OK):
        raise PermissionError(errno.EACCES, "Permission denied", str(out))


class Trainer:
    """Trains the configured model on the configured data for the data's task, writing to ``out_dir``.

    The task (from the data's :class:`DataSpec`) gives the loss, the metrics and their names; the
    model is used only through the :class:`~pointnet_kit.models.contract.PointModel` contract.

    Files: ``config.yaml`` (resolved), ``metrics.jsonl`` (one line per epoch), ``checkpoint_last.pt``,
    ``checkpoint_best.pt`` (best on the validation split), ``summary.json``; each written atomically.
    Per epoch: metrics, then last (which also holds the history and which epoch best holds), then
    best, so a kill -9 at any moment leaves a state that resuming repairs to exactly what an
    uninterrupted run writes (see :meth:`resume_from`).

    Args:
        resume: a run folder (or its ``checkpoint_last.pt``) to continue; when it is ``out_dir`` the
            run continues in place, else ``out_dir`` must be a new or empty folder.
    """

    def __init__(self, config: Config, out_dir: str | Path, log: Logger = print, resume: str | Path | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        resume_dir = None if resume is None else Path(resume).parent if Path(resume).name == LAST else Path(resume)
        self.continuing = resume_dir is not None and resume_dir.resolve() == self.out_dir.resolve()
        self.device = resolve_device(config.runtime.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.is_main:
            check_out_dir(self.out_dir, self.continuing)
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
        self.spec = run_spec(config, self.train_set)
        self.task: Task = get_task(self.spec.task, self.spec, label_smoothing=config.train.label_smoothing)
        valid = [f"val_{m}" for m in self.task.metric_names]
        self.select_metric = config.train.select_metric or f"val_{self.task.default_select_metric}"
        if self.select_metric not in valid:
            raise ConfigError(
                f"train.select_metric={self.select_metric!r} is not a {self.task.name} metric; use one of {', '.join(valid)}"
            )
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
        self.train_data: Batch = self.train_set.as_tensors(self.device)
        self.val_data: Batch = self.val_set.as_tensors(self.device)
        # Label-aware: shuffle and dropout move part labels with their points; rotations turn about spec.up_axis.
        self.augment = build_batch_transforms(augmentation_specs(config, self.spec.up_axis), up_axis=self.spec.up_axis)

        model = create_model(
            config.model.name,
            seed=config.runtime.seed,
            num_classes=self.task.num_outputs,
            in_channels=self.spec.in_channels,
            **config.model.kwargs,
        )
        if model.task != self.task.name:
            raise ConfigError(
                f"model {config.model.name!r} is a {model.task} model but the data ({config.data.root}) is for {self.task.name}"
            )
        if model.num_categories not in (0, len(self.spec.class_names)):
            raise ConfigError(
                f"model.kwargs.num_categories={model.num_categories} but the data has {len(self.spec.class_names)} categories"
            )
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
        self.best: dict[str, Any] = {"epoch": None, "value": -math.inf}
        self.history: list[dict[str, Any]] = []
        if resume is not None:
            self.resume_from(resume)

    # --- checkpoints ---------------------------------------------------------------------------

    def _checkpoint_extra(self, epoch: int, metrics: dict[str, Any]) -> dict[str, Any]:
        return {
            "task": self.task.name,
            "data_spec": self.spec.to_dict(),
            "class_names": self.class_names,
            "config": self.config.to_dict(),
            "epoch": epoch,
            "metrics": metrics,
            "best": dict(self.best),  # the epoch checkpoint_best.pt holds
            "history": [dict(m) for m in self.history],  # metrics.jsonl is rebuilt from it on resume
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(self.device),
            "versions": _versions(),
        }

    def resume_from(self, path: str | Path) -> None:
        """Restore model, optimizer, scheduler, RNG, best record and history from ``checkpoint_last.pt``.

        A run folder with a config but no checkpoint yet (killed in its first epoch) starts over.
        When the run continues in place, the files a kill may have left behind are put right: temp
        files removed, ``checkpoint_best.pt`` rewritten when the kill came between writing last and
        best (best then holds last's epoch, whose weights last has), and metrics.jsonl rebuilt.
        """
        path = Path(path)
        file = path / LAST if path.is_dir() else path
        if not file.is_file() and path.is_dir() and is_run_dir(path):
            self.log(f"{path} has no checkpoint yet (stopped in its first epoch): starting it over")
            return
        ckpt = load_checkpoint(file, map_location=self.device)
        if ckpt["model_name"] != self.config.model.name:
            raise CheckpointError(f"cannot resume: checkpoint holds {ckpt['model_name']!r}, config says {self.config.model.name!r}")
        if list(ckpt.get("class_names", [])) != self.class_names:
            raise CheckpointError("cannot resume: the checkpoint's classes differ from the data's")
        if "optimizer" not in ckpt:
            raise CheckpointError(f"{path} has no optimizer state; resume needs a {LAST}")
        bad = non_finite_tensors(ckpt["model_state"])
        if bad:
            raise NonFiniteError(f"cannot resume from {file}: its weights hold NaN or inf ({bad[0]}); start a new run")
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt.get("scaler", {}))
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if "cuda" in ckpt["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"].cpu(), self.device)
        self.start_epoch = int(ckpt["epoch"])
        self.best = dict(ckpt.get("best", self.best))
        if "history" in ckpt:
            self.history = [dict(m) for m in ckpt["history"]]
        else:  # checkpoints from before the history was kept in them
            metrics_path = file.parent / "metrics.jsonl"
            if metrics_path.is_file():
                lines = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
                self.history = [m for m in lines if m["epoch"] <= self.start_epoch]
        if self.continuing and self.dist.is_main and self.best.get("epoch") == self.start_epoch:
            # Killed between writing last and best? Best is last's epoch, so last's bytes are best's.
            atomic_write_bytes(self.out_dir / BEST, file.read_bytes())
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
        sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss * shapes, shapes, correct, total
        start = time.perf_counter()
        progress = _progress(len(batches), f"epoch {epoch + 1}/{cfg.train.epochs}", cfg.runtime.progress and self.dist.is_main)
        # Non-finite losses stop the run. Checked before the step on CPU (free there); on GPUs every
        # few steps, to keep the device busy (the weights are checked again before any checkpoint).
        check_every, pending = (1 if device.type == "cpu" else 16), []
        for step, indices in enumerate(batches):
            indices = indices.to(device, non_blocking=True)
            batch = self.augment({key: value[indices] for key, value in self.train_data.items()}, generator=aug_generator)
            with autocast_context(device, cfg.runtime.amp):
                out = self.step_model(batch["points"], category_input(self.model, batch))  # points (b, N, C)
                loss = self.task.loss(out, batch)
            pending.append(loss.detach())
            if len(pending) == check_every or step == len(batches) - 1:
                values = torch.stack(pending).float()
                finite = torch.isfinite(values)
                if not bool(finite.all()):
                    first = int((~finite).nonzero()[0])
                    progress.close()
                    raise self._diverged(epoch, f"step {step - len(pending) + first + 2}/{len(batches)}: loss {float(values[first])}")
                pending.clear()
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = batch["labels"].shape[0]
            correct, total = self.task.accuracy_counts(out["logits"].detach(), batch)
            sums += torch.stack([loss.detach().double() * n, torch.tensor(float(n), device=device, dtype=torch.float64), correct.double(), total.double()])
            progress.update(1)
        progress.close()
        bad = non_finite_tensors(self.model.state_dict())
        if bad:
            raise self._diverged(epoch, f"after its last step: weights {', '.join(bad[:2])} hold NaN or inf")
        all_reduce_sum(sums, self.dist)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        loss_sum, count, correct, total = sums.tolist()
        return {
            "train_loss": loss_sum / max(count, 1),
            "train_acc": correct / max(total, 1),
            "train_seconds": seconds,
            "shapes_per_s": count / seconds if seconds > 0 else float("nan"),
        }

    def _diverged(self, epoch: int, where: str) -> NonFiniteError:
        """The one-line error of a run whose loss or weights stopped being numbers (nothing of it is saved)."""
        kept = f"{LAST} keeps epoch {self.history[-1]['epoch']}" if self.history else "no checkpoint was written"
        return NonFiniteError(
            f"training diverged in epoch {epoch + 1}, {where}; stopped without saving it ({kept} in {self.out_dir}); "
            f"lower optim.lr (now {self.config.optim.lr:g}) or set train.grad_clip, and start a new run"
        )

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """The task's metrics and loss on the validation split (sharded across processes) as ``val_<name>``."""
        rank, world = self.dist.rank, self.dist.world_size
        shard = {key: value[rank::world] for key, value in self.val_data.items()}
        meter = evaluate_batch(self.model, self.task, shard, self.config.train.eval_batch_size, self.config.runtime.amp)
        meter.reduce(lambda tensor: all_reduce_sum(tensor, self.dist))
        stats = meter.compute()
        return {"val_loss": stats["loss"], **{f"val_{m}": stats[m] for m in self.task.metric_names}, "_stats": stats}

    # --- the run ---------------------------------------------------------------------------------

    def _write_text(self, name: str, text: str, exclusive: bool = False) -> None:
        atomic_write_text(self.out_dir / name, text, exclusive=exclusive)

    def _write_metrics(self) -> None:
        self._write_text("metrics.jsonl", "".join(json.dumps(m) + "\n" for m in self.history))

    def _open_run_dir(self) -> None:
        """Write config.yaml: claimed exclusively by a new run (two runs never share a folder), rewritten
        by a continued one, whose leftovers of a kill (temp files, metrics ahead of last, a summary
        of fewer epochs) are put right."""
        text = f"{RUN_MARK} (resolved); continue it with: pointnet-kit train --resume <this folder>\n" + self.config.to_yaml()
        if not self.continuing:
            try:
                self._write_text("config.yaml", text, exclusive=True)
            except FileExistsError:
                raise PointNetKitError(f"{self.out_dir} was taken by another run started at the same time; choose another --out") from None
            remove_orphan_tmp(self.out_dir)  # of a run killed before it wrote its config
            return
        remove_orphan_tmp(self.out_dir)
        self._write_text("config.yaml", text)
        self._write_metrics()
        if self.start_epoch < self.config.train.epochs:
            (self.out_dir / "summary.json").unlink(missing_ok=True)  # rewritten when the run completes

    def fit(self) -> dict[str, Any]:
        if self.dist.is_main:
            self._open_run_dir()
        writer = _tensorboard(self.out_dir) if self.config.runtime.tensorboard and self.dist.is_main else None
        try:
            summary = self._fit(writer)
        finally:
            if writer is not None:
                writer.close()
            cleanup(self.dist)
        return summary

    def _fit(self, writer) -> dict[str, Any]:  # noqa: ANN001 - a SummaryWriter or None
        cfg = self.config
        parts = f", {self.task.num_outputs} parts" if self.spec.part_names else ""
        self.log(
            f"training {cfg.model.name} ({self.task.name}) on {cfg.data.root}: {len(self.train_set)} train / "
            f"{len(self.val_set)} val shapes (stratified {cfg.data.val_fraction:.0%} of train), "
            f"{len(self.class_names)} classes{parts}, device {self.device}"
            + (f", {self.dist.world_size} processes" if self.dist.enabled else "")
        )
        wall = time.perf_counter()
        for epoch in range(self.start_epoch, cfg.train.epochs):
            lr = self.optimizer.param_groups[0]["lr"]
            train_stats = self.train_epoch(epoch)
            try:
                val = self.validate()
            except NonFiniteError as exc:
                raise self._diverged(epoch, f"on the validation split ({exc})") from exc
            self.scheduler.step()
            record = {"epoch": epoch + 1, "lr": lr, **train_stats, **{k: v for k, v in val.items() if k != "_stats"}}
            self.history.append(record)
            value = record[self.select_metric]
            improved = value > self.best["value"]  # NaN (an empty split) never improves
            if improved:
                self.best = {"epoch": epoch + 1, "value": value, "metric": self.select_metric}
            if self.dist.is_main:
                # This order is what resume_from relies on: metrics may run ahead of last (cut back on
                # resume), and best may lag last only when best is last's epoch (copied on resume).
                self._write_metrics()
                extra = self._checkpoint_extra(epoch + 1, record)
                save_checkpoint(self.out_dir / LAST, self.model, **extra)
                if improved:
                    save_checkpoint(self.out_dir / BEST, self.model, **extra)
                if writer is not None:
                    for key, v in record.items():
                        if key != "epoch":
                            writer.add_scalar(tensorboard_tag(key), v, epoch + 1)
            val_text = "  ".join(f"val_{m} {record[f'val_{m}']:.4f}" for m in self.task.metric_names)
            self.log(
                f"epoch {epoch + 1:>3}/{cfg.train.epochs}  loss {record['train_loss']:.4f}  train acc {record['train_acc']:.4f}  "
                f"{val_text}  lr {lr:.2e}  "
                f"{record['train_seconds']:.1f}s  {record['shapes_per_s']:.0f} shapes/s" + ("  *" if improved else "")
            )
        wall = time.perf_counter() - wall
        summary = self._summary(wall)
        if self.dist.is_main:
            self._write_text("summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def _summary(self, wall: float) -> dict[str, Any]:
        cfg, last = self.config, self.history[-1] if self.history else {}
        best = next((m for m in self.history if m["epoch"] == self.best.get("epoch")), {})
        throughput = [m["shapes_per_s"] for m in self.history[1:] or self.history]
        metrics = list(self.task.metric_names)
        keys = ["epoch", *(f"val_{m}" for m in metrics), "val_loss", "train_acc", "train_loss"]
        pick = lambda m: {k: m.get(k) for k in keys}  # noqa: E731
        return {
            "model": cfg.model.name,
            "task": self.task.name,
            "data": cfg.data.root,
            "classes": len(self.class_names),
            "metric_names": metrics,
            # The selected checkpoint's validation metrics (what `eval RUN` reproduces).
            **{m: best.get(f"val_{m}") for m in metrics},
            "splits": {
                "train": {"shapes": len(self.train_set), "source": "train files minus the validation split"},
                "val": {
                    "shapes": len(self.val_set),
                    "source": f"stratified {cfg.data.val_fraction:.0%} of the train files, seed {cfg.data.split_seed}",
                },
                "test": "not used: no number in this summary comes from a test split",
            },
            "epochs": len(self.history),
            "selected_by": f"{self.select_metric} on the validation split",
            "best": pick(best),
            "final": pick(last),
            "wall_time_s": round(wall, 2),
            "train_shapes_per_s": float(np.median(throughput)) if throughput else None,
            "device": str(self.device) + (f" x{self.dist.world_size}" if self.dist.enabled else ""),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else platform.processor() or platform.machine(),
            "data_spec": self.spec.to_dict(),
            "versions": _versions(),
        }


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    # disable=None turns the bar off when stderr is not a terminal.
    return tqdm(total=total, desc=desc, leave=False, disable=None if enabled else True, file=sys.stderr)


def tensorboard_tag(key: str) -> str:
    """Group a metrics.jsonl key into a TensorBoard section: ``val_oa`` -> ``val/oa``, ``train_loss`` -> ``train/loss``.

    Keys of neither split (``lr``, ``seconds``, ``shapes_per_s``) go under ``train/``: they describe the training epoch.
    """
    for split in ("train", "val", "test"):
        if key.startswith(split + "_"):
            return f"{split}/{key[len(split) + 1:]}"
    return f"train/{key}"


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
    """Train as ``config`` says into ``out_dir`` (resuming from ``resume`` if given); return the summary.

    ``out_dir`` must be missing or empty for a new run; ``resume=out_dir`` continues the run there.
    """
    return Trainer(config, out_dir, log=log, resume=resume).fit()


def config_for_resume(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The config a run was started with (from its ``checkpoint_last.pt``, or its ``config.yaml`` when it
    was stopped before its first checkpoint), plus overrides (e.g. more epochs)."""
    run_dir = Path(run_dir)
    if (run_dir / LAST).is_file():
        return config_from_dict(checkpoint_config(load_checkpoint(run_dir / LAST)).to_dict(), overrides)
    if is_run_dir(run_dir):
        import yaml

        return config_from_dict(yaml.safe_load((run_dir / "config.yaml").read_text()), overrides)
    raise PointNetKitError(f"nothing to resume in {run_dir}: no {LAST} and no config.yaml of a pointnet-kit run")
