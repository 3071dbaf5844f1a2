"""Download, verification and safe extraction, against a loopback HTTP server.

The real-data test serves BEIR's own nfcorpus.zip from ../shared/data/beir-zips; the fault tests
use a tiny synthetic BEIR zip registered under the name `tiny` (monkeypatched registry entry).
"""

from __future__ import annotations

import filecmp
import hashlib
import io
import json
import os
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from gtr_eval.cli import cli
from gtr_eval.data import download as dl
from gtr_eval.data import registry as datasets
from gtr_eval.data.download import MARKER, DownloadError, download
from gtr_eval.data.registry import DatasetInfo

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
NFCORPUS_ZIP = SHARED / "data" / "beir-zips" / "nfcorpus.zip"
NFCORPUS_DIR = SHARED / "data" / "beir" / "nfcorpus"
NFCORPUS_MD5 = "a89dba18a62ef92f7d323ec890a0d38d"
needs_shared = pytest.mark.skipif(
    not (NFCORPUS_ZIP.is_file() and NFCORPUS_DIR.is_dir()),
    reason=f"real BEIR data not found at {SHARED}/data (see its README.md); skipping real-data test",
)


# ---------------------------------------------------------------------------------------------
# A loopback server whose behaviour per path the test chooses.


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        srv = self.server
        with srv.lock:
            srv.hits[self.path] = srv.hits.get(self.path, 0) + 1
            n = srv.hits[self.path]
        name = self.path.rsplit("/", 1)[-1]
        rule = srv.rules.get(name, "ok")
        if rule == "flaky" and n <= srv.flaky_failures:
            rule = 500
        if isinstance(rule, int):
            self.send_error(rule)
            return
        body = srv.files.get(name)
        if body is None and srv.directory is not None and (srv.directory / name).is_file():
            body = (srv.directory / name).read_bytes()
        if body is None:
            self.send_error(404)
            return
        if rule == "slow":
            srv.stop.wait(5)  # longer than the client's timeout; ends at teardown
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rule == "cut":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.rules: dict[str, object] = {}
        self.directory: Path | None = None
        self.hits: dict[str, int] = {}
        self.flaky_failures = 1
        self.lock = threading.Lock()
        self.stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def requests_for(self, name: str) -> int:
        return sum(n for p, n in self.hits.items() if p.endswith("/" + name))


@pytest.fixture
def server():
    srv = _Server()
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Helpers


def _beir_files(prefix: str = "tiny/") -> dict[str, bytes]:
    corpus = "".join(
        json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) + "\n" for i in range(5)
    )
    return {
        f"{prefix}corpus.jsonl": corpus.encode(),
        f"{prefix}queries.jsonl": b'{"_id": "q1", "text": "what"}\n{"_id": "q2", "text": "who"}\n',
        f"{prefix}qrels/test.tsv": b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq2\td3\t2\r\n",
    }


def _zip(entries: dict[str | zipfile.ZipInfo, bytes], dirs: tuple[str, ...] = ("tiny/",)) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(d, b"")
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _register(monkeypatch, data: bytes, name: str = "tiny") -> None:
    info = DatasetInfo(name=name, url=None, md5=_md5(data), split="test", num_docs=5, num_queries=2)
    monkeypatch.setitem(datasets._REGISTRY, name, info)


def _assert_clean(data_dir: Path, name: str = "tiny") -> None:
    """No dataset folder, no temp folder, no partial file: only the (empty) lock may remain."""
    assert not (data_dir / name).exists()
    left = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*"))
    assert set(left) <= {".downloads", f".downloads/{name}.lock"}, left


def _assert_tiny(folder: Path) -> None:
    for rel, data in _beir_files("").items():
        assert (folder / rel).read_bytes() == data
    marker = json.loads((folder / MARKER).read_text())
    assert marker["md5"] == datasets.get("tiny").md5


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MARKER)


@pytest.fixture
def tiny(monkeypatch, server) -> bytes:
    good = _zip(_beir_files())
    _register(monkeypatch, good)
    server.files["tiny.zip"] = good
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    return good


# ---------------------------------------------------------------------------------------------
# (a) the real NFCorpus zip through the real CLI


@needs_shared
def test_cli_download_nfcorpus_matches_official_folder(server, tmp_path):
    assert _md5(NFCORPUS_ZIP.read_bytes()) == NFCORPUS_MD5 == datasets.get("nfcorpus").md5
    server.directory = NFCORPUS_ZIP.parent
    data = tmp_path / "data"
    args = ["download", "nfcorpus", "--base-url", server.url, "--data-dir", str(data), "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = data / "nfcorpus"
    assert res.stdout.strip() == str(out)
    assert (
        _tree(out)
        == _tree(NFCORPUS_DIR)
        == [
            "corpus.jsonl",
            "qrels/dev.tsv",
            "qrels/test.tsv",
            "qrels/train.tsv",
            "queries.jsonl",
        ]
    )
    for rel in _tree(out):
        assert filecmp.cmp(out / rel, NFCORPUS_DIR / rel, shallow=False), rel
    marker = json.loads((out / MARKER).read_text())
    assert marker["md5"] == NFCORPUS_MD5 and marker["url"] == server.url + "nfcorpus.zip"
    assert sorted(p.name for p in data.iterdir()) == [".downloads", "nfcorpus"]  # no temp folder
    assert [p.name for p in (data / ".downloads").iterdir()] == ["nfcorpus.lock"]  # zip removed
    assert out.stat().st_mode & 0o777 == (data / ".downloads").stat().st_mode & 0o777  # umask, not 0700

    res2 = CliRunner().invoke(cli, args)
    assert res2.exit_code == 0 and "already downloaded" in res2.stderr
    assert server.requests_for("nfcorpus.zip") == 1


# ---------------------------------------------------------------------------------------------
# (b) a corrupted copy of the real zip


@needs_shared
def test_corrupted_zip_fails_checksum_and_leaves_nothing(server, tmp_path):
    blob = bytearray(NFCORPUS_ZIP.read_bytes())
    for i in range(1000, len(blob), 250_000):
        blob[i] ^= 0xFF
    server.files["nfcorpus.zip"] = bytes(blob)
    data = tmp_path / "data"
    res = CliRunner().invoke(
        cli, ["download", "nfcorpus", "--base-url", server.url, "--data-dir", str(data), "--no-progress"]
    )
    assert res.exit_code == 1
    assert "checksum" in res.stderr and NFCORPUS_MD5 in res.stderr and _md5(bytes(blob)) in res.stderr
    assert "Traceback" not in res.output
    _assert_clean(data, "nfcorpus")

    server.files.clear()
    server.directory = NFCORPUS_ZIP.parent  # healthy server: the next call succeeds
    out = download("nfcorpus", data, base_url=server.url, progress=False)
    assert filecmp.cmp(out / "corpus.jsonl", NFCORPUS_DIR / "corpus.jsonl", shallow=False)


# ---------------------------------------------------------------------------------------------
# (c) unsafe archives


def _symlink_entry() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("tiny/qrels")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "entry",
    ["../evil", "tiny/../../evil", "/tmp/gtr-eval-evil", "C:/evil", "tiny\\..\\..\\evil", "symlink"],
)
def test_unsafe_archive_refused(server, monkeypatch, tmp_path, entry):
    files: dict = dict(_beir_files())
    if entry == "symlink":
        files = {_symlink_entry(): b"/etc", **files}  # a link first, then files written through it
        shown = "tiny/qrels"
    else:
        files[entry] = b"pwned"
        shown = entry
    blob = _zip(files)
    _register(monkeypatch, blob)
    server.files["tiny.zip"] = blob
    data = tmp_path / "sub" / "data"
    with pytest.raises(DownloadError) as e:
        download("tiny", data, base_url=server.url, progress=False, retries=0)
    msg = str(e.value)
    assert "unsafe archive" in msg and repr(shown) in msg and "tiny.zip" in msg
    _assert_clean(data)
    assert not list(tmp_path.rglob("evil")) and not Path("/tmp/gtr-eval-evil").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


# ---------------------------------------------------------------------------------------------
# (d) server faults: a clear error, a clean state, then success against a healthy server


FAULTS = {
    404: ("HTTP 404", {}),
    500: ("HTTP 500", {}),
    "cut": ("connection dropped before the whole file arrived", {}),
    "slow": ("timed out after 0.5 s", {"timeout": 0.5}),
    "truncated": ("corrupt archive", {}),
}


@pytest.mark.parametrize("fault", list(FAULTS), ids=str)
def test_server_fault_then_healthy_retry(server, tiny, monkeypatch, tmp_path, fault):
    expected, kw = FAULTS[fault]
    if fault == "truncated":  # an archive whose md5 happens to be the registered one
        bad = tiny[: len(tiny) * 2 // 3]
        _register(monkeypatch, bad)
        server.files["tiny.zip"] = bad
    else:
        server.rules["tiny.zip"] = fault
    data = tmp_path / "data"
    with pytest.raises(DownloadError) as e:
        download("tiny", data, base_url=server.url, progress=False, retries=0, **kw)
    assert expected in str(e.value)
    if fault != "truncated":
        assert server.url + "tiny.zip" in str(e.value)
    _assert_clean(data)

    _register(monkeypatch, tiny)
    server.files["tiny.zip"] = tiny
    server.rules.clear()
    _assert_tiny(download("tiny", data, base_url=server.url, progress=False, retries=0))


@pytest.mark.parametrize("fault", [500, "cut"], ids=str)
def test_transient_fault_is_retried(server, tiny, tmp_path, fault):
    server.rules["tiny.zip"] = "flaky" if fault == 500 else "cut"
    if fault == "cut":  # cut once, then healthy
        orig = _Handler.do_GET

        def once(self):
            if self.server.requests_for("tiny.zip") >= 1:
                self.server.rules.clear()
            orig(self)

        server.RequestHandlerClass = type("H", (_Handler,), {"do_GET": once})
    _assert_tiny(download("tiny", tmp_path, base_url=server.url, progress=False, retries=1))
    assert server.requests_for("tiny.zip") == 2


def test_404_is_not_retried(server, tiny, tmp_path):
    server.rules["tiny.zip"] = 404
    with pytest.raises(DownloadError, match="HTTP 404"):
        download("tiny", tmp_path, base_url=server.url, progress=False, retries=3)
    assert server.requests_for("tiny.zip") == 1


def test_connection_refused_is_clear(tiny, tmp_path):
    with pytest.raises(DownloadError, match="connection failed"):
        download("tiny", tmp_path, base_url="http://127.0.0.1:9/", progress=False, retries=0, timeout=2)
    _assert_clean(tmp_path)


# ---------------------------------------------------------------------------------------------
# Layouts, markers, base URL, special datasets


def test_flat_archive_and_skip(server, monkeypatch, tmp_path):
    flat = _zip(_beir_files(prefix=""), dirs=())
    _register(monkeypatch, flat)
    server.files["tiny.zip"] = flat
    out = download("tiny", tmp_path, base_url=server.url, progress=False)
    _assert_tiny(out)
    assert download("tiny", tmp_path, base_url=server.url, progress=False) == out
    assert server.requests_for("tiny.zip") == 1


def test_archive_without_beir_files_refused(server, monkeypatch, tmp_path):
    blob = _zip({"tiny/readme.txt": b"hi"})
    _register(monkeypatch, blob)
    server.files["tiny.zip"] = blob
    with pytest.raises(DownloadError, match="not a BEIR dataset"):
        download("tiny", tmp_path, base_url=server.url, progress=False)
    _assert_clean(tmp_path)


def test_base_url_env_and_trailing_slash(server, tiny, monkeypatch, tmp_path):
    monkeypatch.setenv("GTR_EVAL_BASE_URL", server.url.rstrip("/"))
    _assert_tiny(download("tiny", tmp_path / "a", progress=False))
    assert dl.dataset_url("tiny", server.url + "/") == server.url + "tiny.zip"
    assert dl.dataset_url("x", None).endswith("/x.zip")
    monkeypatch.delenv("GTR_EVAL_BASE_URL")
    assert dl.dataset_url("scifact") == datasets.get("scifact").url


def test_stale_marker_is_replaced_foreign_folder_is_kept(server, tiny, tmp_path):
    out = download("tiny", tmp_path, base_url=server.url, progress=False)
    marker = json.loads((out / MARKER).read_text())
    (out / MARKER).write_text(json.dumps(dict(marker, md5="0" * 32)))
    (out / "old-file").write_text("x")
    _assert_tiny(download("tiny", tmp_path, base_url=server.url, progress=False))
    assert not (out / "old-file").exists() and server.requests_for("tiny.zip") == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads", "tiny"]

    foreign = tmp_path / "other"
    (foreign / "tiny").mkdir(parents=True)
    (foreign / "tiny" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="not downloaded by gtr-eval"):
        download("tiny", foreign, base_url=server.url, progress=False)
    assert (foreign / "tiny" / "mine.txt").read_text() == "keep"


def test_leftover_partial_download_is_not_trusted(server, tiny, tmp_path):
    partial = tmp_path / ".downloads" / "tiny"
    partial.mkdir(parents=True)
    (partial / "tiny.zip").write_bytes(tiny[:100])
    (partial / "tmpabc123").write_bytes(b"half")
    _assert_tiny(download("tiny", tmp_path, base_url=server.url, progress=False))
    assert not partial.exists()


def test_non_public_dataset_explains_and_accepts_local_folder(tmp_path):
    with pytest.raises(DownloadError) as e:
        download("robust04", tmp_path, progress=False)
    assert "not publicly downloadable" in str(e.value) and "ir_datasets" in str(e.value)
    assert not (tmp_path / "robust04").exists()
    (tmp_path / "robust04").mkdir()
    (tmp_path / "robust04" / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    assert download("robust04", tmp_path, progress=False) == tmp_path.resolve() / "robust04"


def test_demo_is_the_bundled_folder(tmp_path):
    assert download("demo", tmp_path) == dl.DEMO_DIR
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x\\y"])
def test_bad_names_rejected_before_any_io(tmp_path, name):
    with pytest.raises(ValueError, match="invalid dataset name"):
        download(name, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_cli_errors_exit_1_without_traceback(server, tiny, tmp_path):
    server.rules["tiny.zip"] = 500
    args = [
        "download",
        "tiny",
        "nope",
        "--base-url",
        server.url,
        "--data-dir",
        str(tmp_path),
        "--no-progress",
    ]
    res = CliRunner().invoke(cli, [*args, "--retries", "0"])
    assert res.exit_code == 1
    assert "Error: tiny: HTTP 500" in res.stderr and "Error: nope: unknown dataset 'nope'" in res.stderr
    assert "Traceback" not in res.output and res.stdout == ""


def test_cli_data_dir_from_env(server, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("GTR_EVAL_DATA_DIR", str(tmp_path / "envdir"))
    res = CliRunner().invoke(cli, ["download", "tiny", "--base-url", server.url, "--no-progress"])
    assert res.exit_code == 0, res.output
    _assert_tiny(tmp_path / "envdir" / "tiny")


def test_no_download_escapes_into_cwd(server, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["download", "tiny", "--base-url", server.url, "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == ["data"]
    _assert_tiny(tmp_path / "data" / "tiny")
