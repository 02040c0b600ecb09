"""Downloading ModelNet: streamed, resumable, checksum-verified, safely extracted.

Offline or a dead link gives a :class:`DataError` that says how to place the files by hand.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..errors import DataError

__all__ = ["Source", "SOURCES", "download_file", "safe_extract_zip", "download_dataset", "file_digest"]


@dataclass(frozen=True)
class Source:
    url: str
    folder: str  # what the zip extracts to
    md5: str | None = None
    note: str = ""


# md5 of the official archives as published with widely used loaders; the HDF5 release has no
# published checksum, so its digest is printed instead of checked.
SOURCES: dict[tuple[str, str], Source] = {
    ("modelnet40", "off"): Source("http://modelnet.cs.princeton.edu/ModelNet40.zip", "ModelNet40", "79bcee68fdf02f581938ba15f4cdca51"),
    ("modelnet10", "off"): Source(
        "http://3dvision.princeton.edu/projects/2014/3DShapeNets/ModelNet10.zip", "ModelNet10", "18f4c73879802c35aa6178f8e773a99e"
    ),
    ("modelnet40", "hdf5"): Source(
        "https://shapenet.cs.stanford.edu/media/modelnet40_ply_hdf5_2048.zip",
        "modelnet40_ply_hdf5_2048",
        note="this Stanford link has often been down; any copy of modelnet40_ply_hdf5_2048.zip works",
    ),
}

CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _progress_enabled(progress: bool | None) -> bool:
    return progress if progress is not None else sys.stderr.isatty()


def download_file(
    url: str,
    dest: str | Path,
    md5: str | None = None,
    sha256: str | None = None,
    progress: bool | None = None,
    timeout: float = 30.0,
) -> Path:
    """Stream ``url`` to ``dest``, resuming a partial ``dest.part`` with an HTTP Range request.

    The finished file is checked against ``md5`` / ``sha256`` when given; a download that fails the
    check is removed (it is ours) and :class:`DataError` says both checksums. A ``dest`` that already
    exists is never downloaded again nor deleted: it is used if it passes the check, else the error
    says the expected and actual checksums and how to go on.

    Raises:
        DataError: a URL that is not http(s), unreachable host, HTTP error, interrupted transfer, or
            checksum mismatch.
    """
    dest = Path(dest)
    _check_url(url)
    if dest.exists() and not dest.is_file():
        raise DataError(f"{dest}: exists and is not a file; move it away or choose another --root")
    if dest.is_file():
        _verify(dest, md5, sha256, placed=True)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "pointnet-kit", **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the partial file is already complete
            response = None
        else:
            raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: cannot connect ({reason})") from exc
    if response is not None:
        with response:
            resumed = response.status == 206
            total = response.length
            total = (total + have if resumed else total) if total is not None else None
            mode, start = ("ab", have) if resumed else ("wb", 0)
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=dest.name, disable=not _progress_enabled(progress))
            try:
                with open(part, mode) as f:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        bar.update(len(block))
            except (OSError, urllib.error.URLError) as exc:
                raise DataError(f"{url}: the transfer broke off ({exc}); run the command again to resume") from exc
            finally:
                bar.close()
        if total is not None and part.stat().st_size < total:
            raise DataError(f"{url}: the transfer broke off at {part.stat().st_size} of {total} bytes; run the command again to resume")
    try:
        _verify(part, md5, sha256)
    except DataError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest


def _check_url(url: str) -> None:
    """Only http(s): ``file://`` would read local files, and anything else is a typo."""
    scheme = urllib.parse.urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme not in ("http", "https") or not urllib.parse.urlsplit(url).netloc:
        raise DataError(f"{url!r}: not an http(s) URL; to use a local archive, put it where the error message of "
                        "a normal download says (it is verified and extracted from there)")


def _verify(path: Path, md5: str | None, sha256: str | None, placed: bool = False) -> None:
    """Check ``path`` against the expected digests; a mismatch names both and how to go on."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and expected.lower() != "none":
            actual = file_digest(path, algorithm)
            if actual.lower() != expected.lower():
                if placed:
                    advice = (f"the file was left as it is; if you trust it, run again with --{algorithm} {actual} "
                              f"(or --{algorithm} none), else move it away to download afresh")
                else:
                    advice = "the download was discarded; run the command again, or pass the right checksum"
                raise DataError(f"{path}: checksum mismatch: {algorithm} is {actual}, expected {expected}; {advice}")


def safe_extract_zip(archive: str | Path, target: str | Path, progress: bool | None = None) -> list[str]:
    """Extract a zip into ``target``, refusing (before writing anything) any member that would land
    outside it: absolute paths, ``..`` components, drive letters, symbolic links. Returns the names.

    Raises:
        DataError: a corrupt zip or an unsafe member.
    """
    archive, target = Path(archive), Path(target).resolve()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a valid zip file ({exc})") from exc
    with zf:
        members = zf.infolist()
        for info in members:
            name = info.filename.replace("\\", "/")
            pure = PurePosixPath(name)
            if pure.is_absolute() or ".." in pure.parts or (pure.parts and ":" in pure.parts[0]):
                raise DataError(f"{archive}: unsafe member {info.filename!r} would be written outside {target}; nothing extracted")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{archive}: member {info.filename!r} is a symbolic link; nothing extracted")
            if not (target / name).resolve().is_relative_to(target):
                raise DataError(f"{archive}: unsafe member {info.filename!r} would be written outside {target}; nothing extracted")
        target.mkdir(parents=True, exist_ok=True)
        for info in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not _progress_enabled(progress)):
            zf.extract(info, target)
    return [m.filename for m in members]


def _manual_hint(name: str, fmt: str, source: Source, url: str, root: Path, archive: Path) -> str:
    layout = "<class>/train|test/*.off" if fmt == "off" else "ply_data_*.h5"
    note = " (any copy works)" if source.note else ""
    return f"by hand: fetch the zip{note} elsewhere, put it at {archive} and rerun, or unzip it so {root / source.folder}/{layout} exists"


def download_dataset(
    name: str,
    root: str | Path | None = None,
    fmt: str = "off",
    url: str | None = None,
    md5: str | None = None,
    progress: bool | None = None,
    keep_archive: bool = False,
    timeout: float = 30.0,
) -> Path:
    """Download and extract ModelNet into ``root``; returns the extracted folder.

    By default the meshes go to ``data/<name>/ModelNet40`` (or ``ModelNet10``) and the HDF5 release
    to ``data/modelnet40_ply_hdf5_2048``.

    Args:
        name: ``"modelnet40"`` or ``"modelnet10"``.
        fmt: ``"off"`` (Princeton's meshes) or ``"hdf5"`` (the ``modelnet40_ply_hdf5_2048`` release).
        url: a mirror instead of the official URL (its checksum is then not assumed).
        md5: expected md5 of the archive (default: the official one where known); ``"none"`` skips the check.
        keep_archive: keep the zip after extracting it (a zip the user placed there is always kept).

    Raises:
        DataError: unknown dataset/format, or a failed download with instructions to do it by hand.
    """
    key = (name.lower(), fmt.lower())
    if key not in SOURCES:
        known = ", ".join(f"{n} --format {f}" for n, f in SOURCES)
        raise DataError(f"no download for {name} --format {fmt} (available: {known}); for ModelNet10 as HDF5, download the OFF "
                        "meshes and run 'pointnet-kit data prepare'")
    source = SOURCES[key]
    if root is None:  # data/modelnet40/ModelNet40, data/modelnet10/ModelNet10, data/modelnet40_ply_hdf5_2048
        root = Path("data") / key[0] if key[1] == "off" else Path("data")
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root}: --root must be a folder, this is a file")
    if url is not None:
        _check_url(url)
    folder = root / source.folder
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    url = url or source.url
    md5 = md5 if md5 is not None else (source.md5 if url == source.url else None)
    archive = root / Path(PurePosixPath(source.url).name)
    placed_by_user = archive.is_file()  # never deleted, whatever happens
    try:
        download_file(url, archive, md5=md5, progress=progress, timeout=timeout)
    except DataError as exc:
        raise DataError(f"{exc}; {_manual_hint(name, fmt, source, url, root, archive)}") from exc
    safe_extract_zip(archive, root, progress=progress)
    if not folder.is_dir():
        found = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "nothing"
        raise DataError(f"{archive}: extracted, but it holds {found}, not {source.folder}/")
    if not keep_archive and not placed_by_user:
        archive.unlink()
    shutil.rmtree(root / "__MACOSX", ignore_errors=True)
    return folder
