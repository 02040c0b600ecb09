"""Training engine: config, loop, loss, metrics, checkpoints. Knows models and data only by interface."""

from .checkpoint import load_checkpoint, load_model, save_checkpoint

__all__ = ["load_checkpoint", "load_model", "save_checkpoint"]
