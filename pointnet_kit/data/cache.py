"""Where generated and prepared data is cached, and writing a cache folder atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["default_cache_dir", "atomic_dir", "files_fingerprint"]


def default_cache_dir() -> Path:
    """``$POINTNET_KIT_CACHE``, else ``~/.cache/pointnet-kit`` (never inside the package)."""
    env = os.environ.get("POINTNET_KIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pointnet-kit"


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it is renamed to ``target``.

    If ``target`` appeared meanwhile (another process built the same cache), it is kept and the
    temporary folder is discarded; on an exception nothing is left behind.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def files_fingerprint(files: Iterable[tuple[str, Path]]) -> str:
    """12 hex digits that change when any of ``files`` (``(key, path)``: the key names the file and
    what it stands for) changes size or modification time, or the list changes: a cache's name."""
    h = hashlib.sha1()
    for key, path in files:
        stat = path.stat()
        h.update(f"{key}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]
