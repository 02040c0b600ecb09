"""Download: resume, checksum, zip-slip, offline failure, all against a tiny server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import stat
import threading
import zipfile

import pytest

from pointnet_kit.data.download import download_dataset, download_file, safe_extract_zip
from pointnet_kit.errors import DataError


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    honour_range = True
    seen_ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        rng = self.headers.get("Range")
        self.seen_ranges.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng and self.honour_range else 0
        if start >= len(body) and start:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "honour_range": True, "seen_ranges": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/ModelNet40.zip"  # nothing listens there any more


PAYLOAD = bytes(range(256)) * 1200  # 300 KB


def test_resumes_a_partial_download(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    dest = tmp_path / "big.bin"
    (tmp_path / "big.bin.part").write_bytes(PAYLOAD[:100_000])
    download_file(f"{server.base}/big.bin", dest, md5=hashlib.md5(PAYLOAD).hexdigest(), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.seen_ranges == ["bytes=100000-"]
    assert not (tmp_path / "big.bin.part").exists()
    download_file(f"{server.base}/big.bin", dest, md5=hashlib.md5(PAYLOAD).hexdigest())  # done: no request
    assert len(server.seen_ranges) == 1


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    server.honour_range = False
    (tmp_path / "big.bin.part").write_bytes(b"stale bytes")
    download_file(f"{server.base}/big.bin", tmp_path / "big.bin", sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD


def test_a_placed_file_that_fails_the_checksum_is_kept_and_explained(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    (tmp_path / "big.bin").write_bytes(b"a truncated copy")
    expected, actual = hashlib.md5(PAYLOAD).hexdigest(), hashlib.md5(b"a truncated copy").hexdigest()
    with pytest.raises(DataError, match=f"md5 is {actual}, expected {expected}.*--md5 {actual}") as info:
        download_file(f"{server.base}/big.bin", tmp_path / "big.bin", md5=expected)
    assert "\n" not in str(info.value)
    assert (tmp_path / "big.bin").read_bytes() == b"a truncated copy"  # never deleted
    assert download_file(f"{server.base}/big.bin", tmp_path / "big.bin", md5="none") == tmp_path / "big.bin"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/a.zip", "not a url", "http://"])
def test_only_http_urls(tmp_path, url):
    with pytest.raises(DataError, match="not an http"):
        download_file(url, tmp_path / "a.zip")
    with pytest.raises(DataError, match="not an http"):
        download_dataset("modelnet10", root=tmp_path, url=url)
    assert list(tmp_path.iterdir()) == []


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "passwd").write_text("root:x:0:0")
    with pytest.raises(DataError, match="must be a folder"):
        download_dataset("modelnet10", root=tmp_path / "passwd")


def test_checksum_mismatch_removes_the_file(server, tmp_path):
    server.files["/big.bin"] = PAYLOAD
    with pytest.raises(DataError, match="checksum mismatch: md5 is [0-9a-f]{32}, expected 0123"):
        download_file(f"{server.base}/big.bin", tmp_path / "big.bin", md5="0123" + "0" * 28)
    assert list(tmp_path.iterdir()) == []


def test_dead_link_and_unreachable_host(server, tmp_path):
    with pytest.raises(DataError, match="HTTP 404"):
        download_file(f"{server.base}/missing.zip", tmp_path / "m.zip")
    with pytest.raises(DataError, match="cannot connect"):
        download_file(closed_port_url(), tmp_path / "m.zip", timeout=5)


def test_offline_download_says_how_to_do_it_by_hand(tmp_path):
    with pytest.raises(DataError) as info:
        download_dataset("modelnet40", root=tmp_path, url=closed_port_url(), timeout=5)
    message = str(info.value)
    assert "cannot connect" in message and "by hand" in message
    assert str(tmp_path / "ModelNet40.zip") in message and "ModelNet40/<class>/train|test/*.off" in message
    with pytest.raises(DataError, match="no download for modelnet10 --format hdf5"):
        download_dataset("modelnet10", root=tmp_path, fmt="hdf5")


def make_zip(members: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "members, symlink, match",
    [
        ({"ok.txt": b"1", "../evil.txt": b"x"}, None, "unsafe member '../evil.txt'"),
        ({"a/../../evil.txt": b"x"}, None, "unsafe member"),
        ({"/tmp/evil.txt": b"x"}, None, "unsafe member '/tmp/evil.txt'"),
        ({"ok.txt": b"1"}, "link", "symbolic link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "symlink"],
)
def test_zip_slip_is_rejected_before_writing_anything(tmp_path, members, symlink, match):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip(members, symlink))
    target = tmp_path / "target"
    with pytest.raises(DataError, match=match):
        safe_extract_zip(archive, target, progress=False)
    assert not target.exists() and not (tmp_path / "evil.txt").exists()


def test_corrupt_zip(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK not really")
    with pytest.raises(DataError, match="not a valid zip"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "t")


def test_download_dataset_end_to_end(server, tmp_path):
    archive = make_zip({"ModelNet10/chair/train/chair_0001.off": b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "__MACOSX/._x": b""})
    server.files["/ModelNet10.zip"] = archive
    folder = download_dataset("modelnet10", root=tmp_path, url=f"{server.base}/ModelNet10.zip", md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert folder == tmp_path / "ModelNet10"
    assert (folder / "chair" / "train" / "chair_0001.off").is_file()
    assert not (tmp_path / "ModelNet10.zip").exists() and not (tmp_path / "__MACOSX").exists()
    server.files.clear()  # already there: no network needed
    assert download_dataset("modelnet10", root=tmp_path, url=f"{server.base}/ModelNet10.zip") == folder


def test_an_archive_placed_by_hand_is_extracted_and_kept(tmp_path):
    archive = make_zip({"ModelNet10/chair/train/chair_0001.off": b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"})
    (tmp_path / "ModelNet10.zip").write_bytes(archive)
    folder = download_dataset("modelnet10", root=tmp_path, md5=hashlib.md5(archive).hexdigest(), progress=False)
    assert (folder / "chair" / "train" / "chair_0001.off").is_file()
    assert (tmp_path / "ModelNet10.zip").read_bytes() == archive  # the user's file stays
