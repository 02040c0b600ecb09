"""Small helpers shared across the package: seeding, device selection, and writes that a user keeps
(atomic files, exclusively created run folders).

NumPy and torch are imported inside the functions that need them, so the write helpers stay cheap to
import (the CLI uses them).
"""

from __future__ import annotations

import errno
import os
import random
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path: str | os.PathLike, data: bytes, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` so that readers (and a kill -9 at any moment) see the old file or the
    new one, never a part: a hidden temp file beside it, fsync, then rename over it. The file gets the
    usual permissions (0666 minus the umask).

    Args:
        exclusive: fail with :class:`FileExistsError` if ``path`` exists (claims a file, e.g. a run's
            ``config.yaml``, even when two processes race for it).

    Raises:
        OSError: the folder is missing or unwritable, or the disk is full (the temp file is removed;
            the error names ``path``; the CLI reports it as one line, exit 3).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would give, not mkstemp's private 0600
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            _rename_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, FileExistsError):
            raise _naming(exc, path) from exc
        raise
    return path


def _rename_new(tmp: str, path: Path) -> None:
    """Rename ``tmp`` to ``path`` only if nothing has that name (a plain rename would replace it)."""
    try:
        os.link(tmp, path)  # atomic and exclusive
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: checked, then renamed (a tiny race)
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from None
        os.replace(tmp, path)
    else:
        os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` naming ``path`` (the file the user asked for) rather than a temp file or nothing."""
    if exc.filename is not None and Path(exc.filename) == path:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", exclusive: bool = False) -> Path:
    """:func:`atomic_write_bytes` for text."""
    return atomic_write_bytes(path, text.encode(encoding), exclusive=exclusive)


def remove_orphan_tmp(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files that a killed :func:`atomic_write_bytes` left in ``folder``; returns them."""
    removed = []
    for tmp in Path(folder).glob(f".*{TMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def exclusive_dir(path: str | os.PathLike, unique: bool = False) -> Path:
    """Create the folder ``path`` (and its parents) and return it, only if it did not exist: two runs
    can never share a folder, and a user's existing folder is never written into.

    Args:
        unique: when ``path`` exists, create ``path-2``, ``path-3``, ... instead (for default names
            such as ``runs/default-<time>`` that two runs started in the same second would share).

    Raises:
        PointNetKitError: ``path`` exists (and ``unique`` is False), or is a file.
        OSError: the parent is unwritable (reported by the CLI with the path, exit 3).
    """
    from .errors import PointNetKitError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000 if unique else 2):
        candidate = path if attempt == 1 else path.with_name(f"{path.name}-{attempt}")
        try:
            os.mkdir(candidate)
            return candidate
        except FileExistsError:
            if not unique:
                what = "a file" if candidate.is_file() else "a folder"
                raise PointNetKitError(
                    f"{candidate} already exists ({what}); choose another --out (runs never write into an existing folder)"
                ) from None
    raise PointNetKitError(f"{path}: could not find a free name after 999 tries")


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same way.

    With ``deterministic=True`` also ask PyTorch for deterministic kernels (slower on GPU).
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` picks cuda, then mps, then cpu; anything else is passed to ``torch.device``."""
    import torch

    from .errors import PointNetKitError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PointNetKitError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PointNetKitError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PointNetKitError(f"device {name!r} requested but MPS is not available on this machine")
    return device


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
