"""acrn.download against a real HTTP server on 127.0.0.1 (stdlib, with Range support)."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import threading
import zipfile

import pytest

from acrn.checkpoint import sha8_of_name
from acrn.download import DownloadError, extract, fetch, lookup_sum, main

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # > 3 chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file.bin (and named variants) with byte ranges; behaviour set per test."""

    protocol_version = "HTTP/1.1"
    state: dict = {}

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        st = self.server.state
        st["requests"].append((self.path, self.headers.get("Range")))
        if st["fail_first"] > 0:
            st["fail_first"] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if not self.path.startswith("/files/"):
            self.send_error(404, "Not Found")
            return
        body = PAYLOAD
        start = 0
        rng = self.headers.get("Range")
        if rng and st["ranges"]:
            m = re.fullmatch(r"bytes=(\d+)-", rng)
            start = int(m.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if st["cut_after"] is not None:
            # an interrupted transfer: send part of the body, then drop the connection
            n = st["cut_after"]
            st["cut_after"] = None
            self.wfile.write(chunk[:n])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(chunk)


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.state = {"requests": [], "fail_first": 0, "cut_after": None, "ranges": True}
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_full_download_verified(server, tmp_path):
    httpd, base = server
    out = fetch(f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, progress=io.StringIO())
    assert out.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path) == ["a.bin"]  # no .part left behind
    assert httpd.state["requests"] == [("/files/a.bin", None)]


def test_interrupted_transfer_is_resumed_with_range(server, tmp_path):
    httpd, base = server
    httpd.state["cut_after"] = 1_000_000
    log = io.StringIO()
    out = fetch(f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, backoff=0.01, progress=log)
    assert out.read_bytes() == PAYLOAD
    reqs = httpd.state["requests"]
    assert reqs[0] == ("/files/a.bin", None)
    # the retry asked only for the missing bytes (what had arrived, in whole 64 KiB reads)
    assert len(reqs) == 2
    offset = int(re.fullmatch(r"bytes=(\d+)-", reqs[1][1]).group(1))
    assert 500_000 < offset <= 1_000_000
    assert "retry 1/5" in log.getvalue()
    assert "100.0%" in log.getvalue()  # the progress bar reached the end


def test_partial_file_from_a_killed_run_is_resumed(server, tmp_path):
    httpd, base = server
    (tmp_path / ".a.bin.part").write_bytes(PAYLOAD[:777_777])
    fetch(f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, progress=None)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert httpd.state["requests"] == [("/files/a.bin", "bytes=777777-")]


def test_complete_partial_file_416_then_verified(server, tmp_path):
    httpd, base = server
    (tmp_path / ".a.bin.part").write_bytes(PAYLOAD)
    fetch(f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, progress=None)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    httpd, base = server
    httpd.state["ranges"] = False
    (tmp_path / ".a.bin.part").write_bytes(b"garbage" * 1000)
    fetch(f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, progress=io.StringIO())
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_404_fails_at_once_naming_url_and_status(server, tmp_path):
    httpd, base = server
    url = f"{base}/missing/video.mkv"
    with pytest.raises(DownloadError, match=re.escape(url) + r".*HTTP 404"):
        fetch(url, tmp_path / "video.mkv", backoff=0.01, progress=None)
    assert len(httpd.state["requests"]) == 1  # not retried
    assert os.listdir(tmp_path) == []


def test_503_is_retried_with_backoff(server, tmp_path):
    httpd, base = server
    httpd.state["fail_first"] = 2
    fetch(
        f"{base}/files/a.bin", tmp_path / "a.bin", sha256=SHA, backoff=0.01, progress=io.StringIO()
    )
    assert len(httpd.state["requests"]) == 3
    httpd.state["fail_first"] = 10
    with pytest.raises(DownloadError, match=r"giving up after 3 attempts: HTTP 503"):
        fetch(f"{base}/files/a.bin", tmp_path / "b.bin", retries=2, backoff=0.01, progress=None)


def test_sha256_mismatch_leaves_nothing(server, tmp_path):
    _, base = server
    url = f"{base}/files/a.bin"
    with pytest.raises(DownloadError, match=re.escape(url) + ".*sha256 mismatch"):
        fetch(url, tmp_path / "a.bin", sha256="0" * 64, progress=None)
    assert os.listdir(tmp_path) == []  # neither the file nor a .part to resume


def test_length_and_name_prefix_checked(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match="length mismatch: expected 5 bytes"):
        fetch(f"{base}/files/a.bin", tmp_path / "a.bin", size=5, progress=None)
    good = f"{base}/files/ckpt-{SHA[:8]}.pth"
    fetch(good, tmp_path / f"ckpt-{SHA[:8]}.pth", progress=None)
    bad = f"{base}/files/ckpt-deadbeef.pth"
    with pytest.raises(DownloadError, match="the name says it starts with deadbeef"):
        fetch(bad, tmp_path / "ckpt-deadbeef.pth", progress=None)
    assert sha8_of_name("x_rgb_20200716-73547d2b.pth") == "73547d2b"
    assert sha8_of_name("ava_v2.1.zip") is None


def test_file_url_plain_path_and_sums(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "trainval").mkdir(parents=True)
    src = mirror / "trainval" / "-abc_DEF.mkv"
    src.write_bytes(PAYLOAD[:1000])
    (mirror / "SHA256SUMS").write_text(
        f"{hashlib.sha256(PAYLOAD[:1000]).hexdigest()}  trainval/-abc_DEF.mkv\n{'1' * 64}  other.txt\n"
    )
    assert lookup_sum(mirror / "SHA256SUMS", str(src)) == hashlib.sha256(PAYLOAD[:1000]).hexdigest()
    fetch(
        f"file://{src}", tmp_path / "a" / "-abc_DEF.mkv", sums=mirror / "SHA256SUMS", progress=None
    )
    fetch(str(src), tmp_path / "b" / "-abc_DEF.mkv", sums=mirror / "SHA256SUMS", progress=None)
    assert (tmp_path / "b" / "-abc_DEF.mkv").read_bytes() == PAYLOAD[:1000]
    src.write_bytes(b"changed")
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(str(src), tmp_path / "c" / "-abc_DEF.mkv", sums=mirror / "SHA256SUMS", progress=None)
    with pytest.raises(DownloadError, match="no such file"):
        fetch(str(mirror / "nope.mkv"), tmp_path / "d.mkv", progress=None)
    with pytest.raises(DownloadError, match=r"SHA256SUMS: no entries for 'nope.mkv'"):
        fetch(
            str(mirror / "nope.mkv"), tmp_path / "d.mkv", sums=mirror / "SHA256SUMS", progress=None
        )


def test_extract_only_named_members(tmp_path):
    z = tmp_path / "ava_v2.2.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("ava_v2.2/ava_train_v2.2.csv", "a,0902,0.1,0.1,0.2,0.2,12,0\n")
        zf.writestr("ava_v2.2/ava_val_v2.2.csv", "b\n")
        zf.writestr("ava_v2.2/README.txt", "readme")
    out = tmp_path / "ann"
    assert main(["extract", str(z), "ava_train_v2.2.csv", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["ava_train_v2.2.csv"]
    with pytest.raises(
        DownloadError, match=r"no member named 'ava_test_v2.2.txt' \(it holds: README.txt"
    ):
        extract(z, ["ava_test_v2.2.txt"], out)


def test_cli_reports_url_and_status(server, tmp_path, capsys):
    _, base = server
    url = f"{base}/nothing-here.zip"
    assert main(["fetch", url, str(tmp_path / "x.zip"), "--backoff", "0.01"]) == 1
    assert f"error: {url}: HTTP 404" in capsys.readouterr().err


def test_same_ids_checks_the_val_csv_against_the_shipped_list(tmp_path, capsys):
    """The val-only jobs are planned from the shipped val ids: a val CSV annotating other
    videos fails, naming them; agreeing ones write the checked marker."""
    ids = tmp_path / "val_ids.txt"
    ids.write_text("vidA\n-vidB\n")
    csv = tmp_path / "ava_val_v2.2.csv"
    csv.write_text("vidA,0902,0.1,0.1,0.5,0.5,12,0\n-vidB,0903,0.1,0.1,0.5,0.5,80,1\n")
    out = tmp_path / "checked"
    assert main(["same-ids", str(csv), str(ids), "--out", str(out)]) == 0
    assert out.read_text() == "-vidB\nvidA\n"
    csv.write_text(csv.read_text() + "vidC,0902,0.1,0.1,0.5,0.5,12,0\n")
    ids.write_text("vidA\n-vidB\nvidD\n")
    out.unlink()
    assert main(["same-ids", str(csv), str(ids), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 only in" in err and "vidC" in err and "vidD" in err and not out.exists()
