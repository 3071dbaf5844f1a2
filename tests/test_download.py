"""Download, verification and safe extraction, against a loopback HTTP server or a local mirror.

The real-data tests serve BEIR's own nfcorpus.zip from ../shared/data/beir-zips (over HTTP, as a
file:// URL and as a plain folder); the fault tests use a tiny synthetic BEIR zip registered under
the name `tiny` (monkeypatched registry entry). Unreachable servers are simulated on loopback: a
closed port on 127.0.0.1 (connection refused) and a host under `.invalid` (RFC 6761: DNS fails).
"""

from __future__ import annotations

import errno
import filecmp
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_process import GTR_EVAL
from click.testing import CliRunner

from gtr_eval.artifacts import RECORD
from gtr_eval.cli import cli
from gtr_eval.data import download as dl
from gtr_eval.data import registry as datasets
from gtr_eval.data.download import MARKER, DownloadError, download
from gtr_eval.data.registry import DatasetInfo
from gtr_eval.errors import Mistake

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
        if rule == "delay":  # slow to start, then the whole file
            srv.stop.wait(2.0)
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
    """Nothing left behind: no dataset folder, temp folder, partial file, lock file or `.downloads/`."""
    assert not (data_dir / name).exists()
    left = sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")) if data_dir.exists() else []
    assert left == [], left


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _assert_tiny(folder: Path) -> None:
    for rel, data in _beir_files("").items():
        assert (folder / rel).read_bytes() == data
    marker = json.loads((folder / MARKER).read_text())
    assert marker["md5"] == datasets.get("tiny").md5


def _tree(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name not in (MARKER, RECORD)
    )


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
    assert marker["mirror"] == server.url.rstrip("/")  # not BEIR's server: the mirror is named
    assert dl.dataset_source(out)["mirror"] == marker["mirror"]  # and goes into result manifests
    # no temp folder, no zip, no lock file, no .downloads/: only the dataset
    assert sorted(p.name for p in data.iterdir()) == ["nfcorpus"]
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()  # umask, not 0700

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
    assert res.exit_code == 3
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
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # sub/data, created for it, went again


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
    url = f"http://127.0.0.1:{closed_port()}/"
    with pytest.raises(DownloadError) as e:
        download("tiny", tmp_path, base_url=url, progress=False, retries=0, timeout=2)
    assert str(e.value) == f"could not download {url}tiny.zip: connection refused"
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]

    foreign = tmp_path / "other"
    (foreign / "tiny").mkdir(parents=True)
    (foreign / "tiny" / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="not downloaded by gtr-eval"):
        download("tiny", foreign, base_url=server.url, progress=False)
    assert (foreign / "tiny" / "mine.txt").read_text() == "keep"


def test_an_edited_download_is_fetched_again_with_a_note(server, tiny, tmp_path, capsys):
    out = download("tiny", tmp_path, base_url=server.url, progress=False)
    corpus = out / "corpus.jsonl"
    before = corpus.stat()
    corpus.write_bytes(corpus.read_bytes().replace(b"text 1", b"text 7"))  # same size, its mtime restored
    os.utime(corpus, ns=(before.st_atime_ns, before.st_mtime_ns))
    _assert_tiny(download("tiny", tmp_path, base_url=server.url, progress=False))
    assert (
        f"[cache] dataset {out} failed its checksum (corpus.jsonl); downloading again"
        in capsys.readouterr().err
    )
    assert server.requests_for("tiny.zip") == 2


def test_leftover_partial_download_is_not_trusted(server, tiny, tmp_path):
    partial = tmp_path / ".downloads" / "tiny"
    partial.mkdir(parents=True)
    (partial / "tiny.zip").write_bytes(tiny[:100])
    (partial / "tmpabc123").write_bytes(b"half")
    _assert_tiny(download("tiny", tmp_path, base_url=server.url, progress=False))
    assert not partial.exists() and not (tmp_path / ".downloads").exists()


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


def test_cli_an_unknown_name_exits_2_before_any_download_and_a_failed_one_3(server, tiny, tmp_path):
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
    assert res.exit_code == 2, res.output  # a mistake in what was asked: nothing was fetched
    assert res.stderr.splitlines() == [res.stderr.strip()] and "Error: unknown dataset 'nope'" in res.stderr
    assert not server.hits and not list(tmp_path.iterdir())
    res = CliRunner().invoke(cli, [*args[:2], *args[3:], "--retries", "0"])
    assert res.exit_code == 3  # a dataset that failed to download: reported, the others would go on
    assert "Error: tiny: HTTP 500" in res.stderr
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


# ---------------------------------------------------------------------------------------------
# A server that cannot be reached: one line, at once, whatever --retries says; nothing left behind


def _register_slow_backoff(monkeypatch) -> None:
    """`tiny`, with the real backoff (2 s, doubling): a retry would show in the elapsed time."""
    _register(monkeypatch, _zip(_beir_files()))
    assert dl.RETRY_BACKOFF_S == 2.0


@pytest.mark.parametrize(
    ("base", "reason"),
    [
        (lambda: f"http://127.0.0.1:{closed_port()}", "connection refused"),
        (lambda: "http://beir-mirror.invalid/datasets", "DNS lookup failed"),  # RFC 6761: never resolves
    ],
    ids=["refused", "dns"],
)
def test_cli_an_unreachable_server_fails_at_once_in_one_line(monkeypatch, tmp_path, base, reason):
    _register_slow_backoff(monkeypatch)
    url = base()
    data = tmp_path / "data"
    args = ["download", "tiny", "--base-url", url, "--data-dir", str(data), "--retries", "5", "--no-progress"]
    start = time.monotonic()
    res = CliRunner().invoke(cli, args)
    elapsed = time.monotonic() - start
    assert res.exit_code == 3, res.output
    assert elapsed < 5, f"took {elapsed:.1f} s: retried or waited"  # 5 retries would wait 2+4+8+16+30 s
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"Error: tiny: could not download {url}/tiny.zip: {reason}"), lines[0]
    assert "retrying" not in res.stderr and "Max retries" not in res.stderr and len(lines[0]) < 200
    assert not data.exists()  # not even the data folder it would have created


def test_a_server_that_answered_once_is_retried_when_it_goes_away(monkeypatch, tmp_path):
    """ "First failure" is the rule: a connection refused after the server has answered (a restart)
    is retried like any transient fault."""
    port = closed_port()
    url = f"http://127.0.0.1:{port}/"
    calls = []

    def fake(url_, md5, work, *, progress, timeout):
        calls.append(url_)
        if len(calls) == 1:
            raise dl._Retryable(f"HTTP 503 Service Unavailable from {url_}")
        return real(url_, md5, work, progress=progress, timeout=timeout)

    real = dl._fetch_once
    monkeypatch.setattr(dl, "_fetch_once", fake)
    monkeypatch.setattr(dl, "RETRY_BACKOFF_S", 0.0)
    with pytest.raises(DownloadError) as e:
        dl._fetch(url + "tiny.zip", "0" * 32, tmp_path, progress=False, timeout=2, retries=2)
    assert len(calls) == 3 and "connection refused (gave up after 3 attempt(s))" in str(e.value)


def test_no_route_to_host_counts_as_unreachable():
    import requests

    for err, said in [
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "network is unreachable"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "DNS lookup failed"),
    ]:
        try:
            try:
                raise err
            except OSError as cause:
                raise requests.ConnectionError("wrapped") from cause
        except requests.ConnectionError as e:
            assert (dl.connection_failure(e) or "").startswith(said), err
    assert dl.connection_failure(requests.ConnectTimeout("timed out")) is None  # a timeout is retried
    assert dl.connection_failure(TimeoutError("timed out")) is None


# ---------------------------------------------------------------------------------------------
# Mirrors: file:// URLs and plain folders


@needs_shared
@pytest.mark.parametrize("form", ["file-url", "absolute", "relative"])
def test_cli_a_local_mirror_serves_the_real_zip_and_is_named(tmp_path, monkeypatch, form):
    folder = NFCORPUS_ZIP.parent.resolve()  # a mirror is named by its real path (../shared may be a link)
    zip_uri = NFCORPUS_ZIP.resolve().as_uri()
    monkeypatch.chdir(tmp_path)
    base = {
        "file-url": folder.as_uri() + "/",
        "absolute": str(folder),
        "relative": os.path.relpath(folder, tmp_path),
    }[form]
    data = tmp_path / "data"
    args = ["download", "nfcorpus", "--base-url", base, "--data-dir", str(data), "--no-progress"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    out = data / "nfcorpus"
    assert res.stdout.strip() == str(out)
    assert _tree(out) == _tree(NFCORPUS_DIR)
    for rel in _tree(out):
        assert filecmp.cmp(out / rel, NFCORPUS_DIR / rel, shallow=False), rel
    marker = json.loads((out / MARKER).read_text())
    assert marker["source"] == "ukp" and marker["md5"] == NFCORPUS_MD5
    assert marker["mirror"] == folder.as_uri() and marker["url"] == zip_uri
    assert dl.dataset_source(out) == {
        "source": "ukp",
        "url": zip_uri,
        "md5": NFCORPUS_MD5,
        "mirror": folder.as_uri(),
        "downloaded_at": marker["downloaded_at"],
    }
    assert f"from the mirror {folder.as_uri()}" in res.stderr and "Perhaps you meant" not in res.output
    assert NFCORPUS_ZIP.is_file() and _md5(NFCORPUS_ZIP.read_bytes()) == NFCORPUS_MD5  # left as it was
    assert sorted(p.name for p in data.iterdir()) == ["nfcorpus"]

    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0
    assert f"already downloaded at {out} (from ukp, the mirror {folder.as_uri()})" in again.stderr


def test_cli_run_manifest_names_the_folder_mirror(tmp_path, monkeypatch):
    """`run` downloads a missing dataset from a folder mirror; its result says which."""
    blob = _zip(_beir_files())
    _register(monkeypatch, blob)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny.zip").write_bytes(blob)
    results = tmp_path / "results"
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "-m",
            "bm25",
            "-d",
            "tiny",
            "--data-dir",
            str(tmp_path / "data"),
            "--base-url",
            str(mirror),
            "--results-dir",
            str(results),
        ],
    )
    assert res.exit_code == 0, res.output
    source = json.loads((results / "bm25" / "tiny.json").read_text())["manifest"]["dataset"]["source"]
    assert source["source"] == "ukp" and source["mirror"] == mirror.as_uri()
    assert source["url"] == (mirror / "tiny.zip").as_uri() and source["md5"] == _md5(blob)
    assert (mirror / "tiny.zip").read_bytes() == blob  # a mirror's zip is never moved or deleted


def test_cli_folder_mirror_faults_are_one_line_and_leave_nothing(tmp_path, monkeypatch):
    good = _zip(_beir_files())
    _register(monkeypatch, good)
    data = tmp_path / "data"

    def run(base: str):
        args = ["download", "tiny", "--base-url", base, "--data-dir", str(data), "--no-progress"]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 3 and len(res.stderr.splitlines()) == 1, res.output
        assert "Traceback" not in res.output
        _assert_clean(data)
        return res.stderr.strip()

    missing = tmp_path / "no-such-mirror"
    assert run(str(missing)) == f"Error: tiny: the mirror folder {missing} does not exist"
    mirror = tmp_path / "mirror"
    (mirror / "tiny").mkdir(parents=True)
    (mirror / "tiny" / "corpus.jsonl").write_text('{"_id": "d0", "text": "x"}\n')
    said = run(mirror.as_uri())
    assert said.startswith(f"Error: tiny: no tiny.zip in the mirror folder {mirror}")
    assert f"evaluate it in place with --data-dir {mirror}" in said
    bad = good[:-10] + b"0123456789"
    (mirror / "tiny.zip").write_bytes(bad)
    said = run(str(mirror))
    assert (
        f"checksum mismatch for {mirror / 'tiny.zip'}: expected md5 {_md5(good)}, got md5 {_md5(bad)}" in said
    )
    assert (mirror / "tiny.zip").read_bytes() == bad  # the user's file is not touched

    for base, said in [
        ("ftp://example.org/beir", "unsupported scheme 'ftp'"),
        ("file://otherhost/beir", "names the host 'otherhost'"),
    ]:
        assert said in run(base)
        with pytest.raises(Mistake, match=said):
            download("tiny", data, base_url=base, progress=False)


def test_mirror_forms():
    assert dl.mirror("http://h/x/").url == "http://h/x"
    assert dl.mirror("file:///srv/beir").folder == Path("/srv/beir").resolve()
    assert dl.mirror("file://localhost/srv/beir").folder == Path("/srv/beir").resolve()
    assert dl.mirror("/srv/beir/").zip_url("scifact") == Path("/srv/beir/scifact.zip").resolve().as_uri()
    assert dl.mirror("~/beir").folder == Path("~/beir").expanduser().resolve()
    assert dl.mirror(None).official and not dl.mirror("http://h/x").official


# ---------------------------------------------------------------------------------------------
# The terminal: no pooch lines; two processes, one download, nothing left behind


@needs_shared
@pytest.mark.parametrize("flags", [[], ["--no-progress"]], ids=["progress", "no-progress"])
def test_cli_download_prints_no_pooch_lines(server, tmp_path, flags):
    server.directory = NFCORPUS_ZIP.parent
    data = tmp_path / "data"
    cmd = [*GTR_EVAL, "download", "nfcorpus", "--base-url", server.url, "--data-dir", str(data), *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Downloading data from" not in out.stderr and "SHA256 hash" not in out.stderr
    said = [line for line in out.stderr.replace("\r", "\n").splitlines() if "%|" not in line and line.strip()]
    assert len(said) == 1 and said[0].startswith("nfcorpus: downloaded from ukp and verified"), out.stderr
    if flags:
        assert "%|" not in out.stderr  # no progress bar either


@needs_shared
def test_two_processes_download_once_and_leave_only_the_dataset(server, tmp_path):
    server.directory = NFCORPUS_ZIP.parent
    server.rules["nfcorpus.zip"] = "delay"  # the first holds the lock a while
    data = tmp_path / "data"
    cmd = [
        *GTR_EVAL,
        "download",
        "nfcorpus",
        "--base-url",
        server.url,
        "--data-dir",
        str(data),
        "--no-progress",
    ]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert server.requests_for("nfcorpus.zip") == 1
    assert sum("already downloaded" in err for _, err in outs) == 1, outs
    assert sorted(p.name for p in data.iterdir()) == ["nfcorpus"]  # no lock file, no .downloads/
    assert filecmp.cmp(data / "nfcorpus" / "corpus.jsonl", NFCORPUS_DIR / "corpus.jsonl", shallow=False)
