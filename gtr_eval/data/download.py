"""Download a BEIR dataset, verify it, and put it atomically into `data_dir/name`.

Sources (`source=`): `ukp`, BEIR's zip server (md5-verified zip, below); `hf-beir` and `hf-mteb`,
copies on the Hugging Face hub converted into the same folder layout (`hub.py`, row counts checked
against the registry); `auto` tries the registry's order and falls back to the next on failure.

The zip server can be replaced by a mirror (`base_url`, or `$GTR_EVAL_BASE_URL`) serving
`<name>.zip`: an `http(s)://` URL, a `file://` URL or a plain folder path. A local mirror's zip is
md5-checked and extracted where it lies (it is never copied, moved or deleted).

Failing fast: a source whose server cannot be reached at all on the first try (DNS lookup failed,
connection refused, no route to the host) is given up at once, without retries or waits; other
faults (a timeout, a dropped connection, HTTP 5xx, 408, 429) are retried `retries` times with a
backoff. The hub sources obey the same rule (`hub.Hub`): huggingface_hub's own retries are not used.
Each failing source is one line (`name: src failed (why); falling back to next`).

Layout under `data_dir`, while a download runs:
- `.downloads/<name>/`  the zip while it downloads (pooch streams it into a randomly named temp
  file there and moves it to `<name>.zip` only once its md5 matches). The zip is deleted after a
  successful extraction, and also after a failed one (a zip that will not extract is useless), so a
  file in there is never mistaken for a finished download.
- `.downloads/<name>.lock`  a lock (flock) taken for the whole download: two processes downloading
  the same dataset into the same folder take turns; the second then finds the finished download and
  skips. The holder deletes the lock file before releasing it (a waiter that then wakes on the
  deleted file takes the lock again on a fresh one), so no lock file stays behind.
- `<name>/`  the dataset. It is extracted (or converted from the hub) into a temporary folder
  `data_dir/.<name>.tmp-*` and renamed into place in one step, with the marker
  `.gtr-eval-download.json` already inside (source; url, md5 and the mirror if one was used, or the
  hub repos, the commits fetched and each file's sha256; time) and the checksum record of every file
  (`artifacts.write_record`), so a `<name>/` folder with a marker is always complete. A later call
  skips when the marker still matches the registry (same md5, same pinned hub copies) and every file
  still matches the record (`artifacts.verify_folder`); a folder that does not is fetched again, with
  a note.
Afterwards nothing but `<name>/` remains: `.downloads/` goes when empty, and a data folder (and
parents) that this call created and that is still empty after a failure is removed again.

Archives are checked before anything is written: entries with an absolute path, a drive letter,
a `..` component or a symlink are refused, and every extracted path is checked to stay inside the
temporary folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ..artifacts import verify_folder, write_record
from ..errors import Mistake, PairError
from ..paths import BUNDLED
from ..progress import interactive
from . import registry
from .loader import DataError
from .network import connection_failure

try:
    import fcntl
except ImportError:  # Windows: filelock's lock, whose file may stay behind
    fcntl = None  # type: ignore[assignment]

MARKER = ".gtr-eval-download.json"
BASE_URL_ENV = "GTR_EVAL_BASE_URL"
RETRY_BACKOFF_S = 2.0  # seconds before the first retry; doubles each time (capped at 30 s)
DEMO_DIR = BUNDLED / "demo"

_DRIVE = re.compile(r"^[A-Za-z]:")


class DownloadError(PairError, RuntimeError):
    """A download, verification or extraction failed; the message says what and where.

    When every source of `auto` failed, `failures` holds each (source, message), in order."""

    stage = "download"

    def __init__(self, message: str, failures: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.failures = failures


class _Retryable(DownloadError):
    """A fault that a retry may cure (connection, timeout, truncated body, HTTP 5xx)."""


class _Unreachable(_Retryable):
    """The server could not be reached at all (DNS, refused, no route): final on a first try."""


@dataclass(frozen=True)
class Mirror:
    """Where the zips come from: `url` (an http(s) base URL, or a local folder's file:// URL) and,
    for a local mirror, its `folder`."""

    url: str
    folder: Path | None = None

    @property
    def official(self) -> bool:
        return self.url == registry.BEIR_BASE_URL

    def zip_url(self, name: str) -> str:
        return (self.folder / f"{name}.zip").as_uri() if self.folder else f"{self.url}/{name}.zip"


def mirror(base_url: str | None = None) -> Mirror:
    """The zip server: `base_url`, else `$GTR_EVAL_BASE_URL`, else BEIR's. An `http(s)://` URL, a
    `file://` URL or a folder path; any other scheme is a `Mistake`."""
    raw = (base_url or os.environ.get(BASE_URL_ENV) or registry.BEIR_BASE_URL).strip()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return Mirror(raw.rstrip("/"))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise Mistake(
                f"mirror {raw!r} names the host {parts.netloc!r}: a file:// mirror must be a local "
                "folder (file:///path/to/folder)"
            )
        folder = Path(url2pathname(parts.path))
    elif "://" in raw:
        raise Mistake(
            f"mirror {raw!r}: unsupported scheme {parts.scheme!r}; give an http(s):// URL, a file:// "
            "URL or a folder path"
        )
    else:  # a path (`C:\mirror` parses with the scheme `c`)
        folder = Path(raw)
    folder = folder.expanduser().resolve()
    return Mirror(folder.as_uri(), folder)


def dataset_url(name: str, base_url: str | None = None) -> str:
    return mirror(base_url).zip_url(name)


def read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def download(
    name: str,
    data_dir: Path,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 60,
    retries: int = 2,
    source: str = "auto",
) -> Path:
    """Make `data_dir/name` hold the verified BEIR dataset `name` and return that path.

    `source`: `ukp` (BEIR's zip server, or the mirror `base_url`), `hf-beir` or `hf-mteb` (the
    Hugging Face hub copies), or `auto`: the registry's order, falling back to the next source when
    one fails, saying so. `demo` returns the folder inside the package. Datasets BEIR cannot
    redistribute raise `DownloadError` saying how to obtain them, unless `data_dir/name` already
    holds a BEIR folder. `progress=False`: no progress bars (failures and fallbacks are still said).
    """
    info = registry.get(name)  # validates the name: it becomes a path
    if info.bundled:
        return DEMO_DIR
    data_dir = Path(data_dir).expanduser().resolve()
    target = data_dir / name
    if not info.public:
        if all(p.joinpath("corpus.jsonl").is_file() for _, p in registry.evaluation_units(name, data_dir)):
            return target
        raise DownloadError(
            f"{name} is not publicly downloadable (BEIR may not redistribute it). {info.how_to_obtain}"
        )
    chain = source_chain(info, source)
    if (done := _current_source(target, info, chain)) is not None:
        _say(f"{name}: already downloaded at {target} (from {done})")
        return target
    server = mirror(base_url) if "ukp" in chain else None  # a mistaken --base-url is said before any I/O

    downloads = data_dir / ".downloads"
    created = [p for p in (data_dir, *data_dir.parents) if not p.exists()]  # deepest first
    try:
        with _locked(downloads / f"{name}.lock"):
            if (done := _current_source(target, info, chain)) is not None:  # another process finished it
                _say(f"{name}: already downloaded at {target} (from {done})")
                return target
            if target.exists() and read_marker(target) is None:
                raise DownloadError(
                    f"{target} exists but was not downloaded by gtr-eval (no {MARKER}); remove it to "
                    "download again, or evaluate it as a local folder"
                )
            _fetch_first(info, chain, data_dir, downloads, server, progress, timeout, retries)
    finally:
        for folder in (downloads, *created):  # only those left empty: nothing stays behind
            with suppress(OSError):
                folder.rmdir()
    return target


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` and delete the file before letting go of it.

    A process that was waiting then holds a lock on a file no longer there: it sees that the path
    is gone (or is another file) and takes the lock again on the file now at `path`."""
    if fcntl is None:
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        with filelock.FileLock(str(path)):
            yield
        with suppress(OSError):
            path.unlink()
        return
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed in between (its last user finished)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        with suppress(OSError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def source_chain(info: registry.DatasetInfo, source: str) -> list[str]:
    """The sources to try, in order: all of the registry's for `auto`, else the one asked for."""
    if source == "auto":
        return list(info.sources)
    if source not in registry.SOURCES:
        raise ValueError(f"unknown source {source!r}; choose auto or one of {', '.join(registry.SOURCES)}")
    if source not in info.sources:
        raise ValueError(
            f"{info.name} has no {source} copy in the registry (it has: {', '.join(info.sources)})"
        )
    return [source]


def _fetch_first(info, chain, data_dir, downloads, server, progress, timeout, retries) -> None:
    """Try each source in turn; the first that yields a verified folder wins. Each failure is one
    line (the last is the error raised)."""
    reach = None  # how to reach the hub, shared by both hub sources (an unreachable hub is tried once)
    failures: list[tuple[str, Exception]] = []
    for i, src in enumerate(chain):
        try:
            if src == "ukp":
                detail = _fetch_ukp(info, data_dir, downloads, server, progress, timeout, retries)
            else:
                if reach is None:
                    from . import hub

                    reach = hub.Hub(timeout, retries, RETRY_BACKOFF_S, _say, progress)
                detail = _fetch_hub(info, src, data_dir, reach)
        except (DownloadError, DataError) as e:
            failures.append((src, e))
            if i + 1 < len(chain):
                _say(f"{info.name}: {src} failed ({e}); falling back to {chain[i + 1]}")
            continue
        after = f" after {', '.join(s for s, _ in failures)} failed" if failures else ""
        _say(f"{info.name}: downloaded from {src}{after} and verified ({detail}) into {data_dir / info.name}")
        return
    if len(failures) == 1:
        raise failures[0][1]
    last, error = failures[-1]
    raise DownloadError(
        f"every source failed ({', '.join(s for s, _ in failures)}); {last}: {error}",
        failures=tuple((s, str(e)) for s, e in failures),
    )


def _fetch_ukp(info, data_dir, downloads, server: Mirror, progress, timeout, retries) -> str:
    assert info.md5 is not None
    url = server.zip_url(info.name)
    marker = {"name": info.name, "source": "ukp", "url": url, "md5": info.md5}
    if not server.official:
        marker["mirror"] = server.url
    via = "" if server.official else f" from the mirror {server.url}"
    if server.folder is not None:
        _extract(_local_zip(server.folder, info.name, info.md5), info.name, data_dir, marker, keep=True)
        return f"md5 {info.md5}{via}"
    work = downloads / info.name
    shutil.rmtree(work, ignore_errors=True)  # leftovers of a killed run: never trusted
    work.mkdir()
    try:
        zip_path = _fetch(
            url, info.md5, work, progress=progress, timeout=timeout, retries=retries, label=info.name
        )
        _extract(zip_path, info.name, data_dir, marker=marker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"md5 {info.md5}{via}"


def _local_zip(folder: Path, name: str, md5: str) -> Path:
    """`folder/<name>.zip` of a local mirror, once its md5 is BEIR's."""
    path = folder / f"{name}.zip"
    if not folder.is_dir():
        raise DownloadError(f"the mirror folder {folder} does not exist")
    if not path.is_file():
        hint = ""
        if (folder / name / "corpus.jsonl").is_file():
            hint = f" (it holds an unpacked {name}/: evaluate it in place with --data-dir {folder})"
        raise DownloadError(f"no {name}.zip in the mirror folder {folder}{hint}")
    digest = hashlib.md5()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    except OSError as e:
        raise DownloadError(f"could not read {path}: {e}") from None
    if digest.hexdigest() != md5:
        raise DownloadError(
            f"checksum mismatch for {path}: expected md5 {md5}, got md5 {digest.hexdigest()}; "
            "the mirror's file is a different or corrupted copy (it was left as it is)"
        )
    return path


def _fetch_hub(info, source: str, data_dir: Path, reach) -> str:
    """Convert each unit's hub copy into a temporary folder, then rename it into place."""
    from . import hub

    target = data_dir / info.name
    tmp = data_dir / f".{info.name}.tmp-{uuid.uuid4().hex[:12]}"
    units = registry.evaluation_units(info.name, data_dir)
    copies = info.hub[source]
    try:
        tmp.mkdir()
        provenance = []
        for (_, path), copy, expected in zip(units, copies, info.expected, strict=True):
            out = tmp / path.relative_to(target)
            try:
                provenance.append(
                    hub.fetch_unit(
                        source, copy, info.split, expected, out, progress=reach.progress, hub=reach
                    )
                )
            except hub.HubUnavailable as e:
                raise DownloadError(str(e)) from None
        marker = {
            "name": info.name,
            "source": source,
            "pins": _pins(info, source),
            "hub": provenance,
            "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        write_record(tmp)
        _move_into_place(tmp, target)
        tmp = None
    except OSError as e:
        raise DownloadError(f"could not write {info.name} from {source} into {data_dir}: {e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    revisions = {
        f"{p[repo]}@{p[rev][:12]}": None
        for p in provenance
        for repo, rev in (("repo", "revision"), ("qrels_repo", "qrels_revision"))
    }
    return ", ".join(revisions)


def _pins(info: registry.DatasetInfo, source: str) -> list[list[str | None]]:
    """What identifies the registry's copies of `info` on `source`; a change means fetch again."""
    return [[c.repo, c.revision, c.qrels_repo, c.qrels_revision, c.folder] for c in info.hub[source]]


def dataset_source(folder: Path) -> dict:
    """Where a dataset folder came from, for result manifests: its download marker (a CQADupStack
    forum's is one level up), else a local folder. A zip from a mirror names it (`mirror`)."""
    for f in (Path(folder), Path(folder).parent):
        if (marker := read_marker(f)) is not None:
            keep = ("url", "md5", "mirror", "hub", "downloaded_at")
            return {"source": marker["source"], **{k: marker[k] for k in keep if k in marker}}
    return {"source": "bundled" if Path(folder) == DEMO_DIR else "local folder"}


def _current_source(target: Path, info: registry.DatasetInfo, chain: list[str]) -> str | None:
    """The source `target` was downloaded from, if it is one of `chain` and still what the registry
    names (the same md5; the same hub copies) and its files are those written; None when it must be
    fetched (again)."""
    marker = read_marker(target)
    if not marker:
        return None
    if (bad := verify_folder(target)) is not None:
        _say(f"[cache] dataset {target} failed its checksum ({bad}); downloading again")
        return None
    src = marker.get("source")
    if src not in chain:
        return None
    if src == "ukp":
        if marker.get("md5") != info.md5:
            return None
        return f"ukp, the mirror {marker['mirror']}" if marker.get("mirror") else src
    return src if marker.get("pins") == _pins(info, src) else None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Fetch


def _fetch(
    url: str, md5: str, work: Path, *, progress: bool, timeout: float, retries: int, label: str = ""
) -> Path:
    """The zip at `url`, md5-checked, in `work`. A server that cannot be reached on the first try is
    not retried; other transient faults are, `retries` times."""
    attempts = max(0, int(retries)) + 1
    for attempt in range(attempts):
        try:
            return _fetch_once(url, md5, work, progress=progress, timeout=timeout)
        except _Retryable as e:
            if attempt == 0 and isinstance(e, _Unreachable):
                raise DownloadError(str(e)) from None  # no server to retry
            if attempt == attempts - 1:
                raise DownloadError(f"{e} (gave up after {attempts} attempt(s))") from None
            wait = min(RETRY_BACKOFF_S * 2**attempt, 30.0)
            _say(
                f"{label + ': ' if label else ''}{e}; retrying in {wait:g} s ({attempts - attempt - 1} left)"
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


def _fetch_once(url: str, md5: str, work: Path, *, progress: bool, timeout: float) -> Path:
    import pooch
    import requests

    fname = url.rsplit("/", 1)[-1]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # no "Downloading data from …" line: the progress bar says it
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"md5:{md5}",
            fname=fname,
            path=work,
            downloader=pooch.HTTPDownloader(
                progressbar=progress and interactive(), timeout=timeout
            ),  # no \r in a log
        )
    except requests.HTTPError as e:
        resp = e.response
        status = resp.status_code if resp is not None else "?"
        reason = resp.reason if resp is not None else ""
        msg = f"HTTP {status} {reason} from {url}".replace("  ", " ")
        if isinstance(status, int) and (status >= 500 or status in (408, 429)):
            raise _Retryable(msg) from None
        raise DownloadError(msg) from None
    except requests.Timeout:
        raise _Retryable(f"timed out after {timeout:g} s waiting for {url}") from None
    except requests.exceptions.ChunkedEncodingError as e:
        raise _Retryable(f"connection dropped before the whole file arrived from {url} ({e})") from None
    except requests.ConnectionError as e:
        if (why := connection_failure(e)) is not None:
            raise _Unreachable(f"could not download {url}: {why}") from None
        if "timed out" in str(e).lower():
            raise _Retryable(f"timed out after {timeout:g} s while reading {url}") from None
        raise _Retryable(f"could not download {url}: connection failed ({e})") from None
    except requests.RequestException as e:
        raise DownloadError(f"could not download {url}: {e}") from None
    except ValueError as e:  # pooch: hash mismatch (it has already deleted the file)
        got = re.search(r"but got ([0-9a-fA-F]+)", str(e))
        raise DownloadError(
            f"checksum mismatch for {url}: expected md5 {md5}, got md5 "
            f"{got.group(1) if got else '?'}; the file was deleted. The server sent a different "
            "or corrupted file."
        ) from None
    except OSError as e:
        raise DownloadError(f"could not write the download of {url} into {work}: {e}") from None
    finally:
        logger.setLevel(level)
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Extract


def _check_entry(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    """The entry's relative path, or DownloadError if it could write outside the target."""
    raw = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DownloadError(f"unsafe archive {archive}: entry {raw!r} is a symbolic link; refused")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix mode recorded
        raise DownloadError(f"unsafe archive {archive}: entry {raw!r} is not a regular file; refused")
    if raw.startswith(("/", "\\")) or _DRIVE.match(raw):
        raise DownloadError(f"unsafe archive {archive}: entry {raw!r} has an absolute path; refused")
    parts = [p for p in re.split(r"[/\\]", raw) if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(f"unsafe archive {archive}: entry {raw!r} contains '..'; refused")
    if "\x00" in raw or any(":" in p for p in parts):
        raise DownloadError(f"unsafe archive {archive}: entry {raw!r} has an invalid name; refused")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _extract(archive: Path, name: str, data_dir: Path, marker: dict, keep: bool = False) -> Path:
    """Unpack `archive` into `data_dir/name` (with `marker`), then delete it unless `keep` (a mirror's)."""
    target = data_dir / name
    tmp: Path | None = None
    try:
        try:
            zf = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DownloadError(f"corrupt archive {archive} (from {marker['url']}): {e}") from None
        with zf:
            members = [(m, _check_entry(archive, m)) for m in zf.infolist()]
            files = [(m, rel) for m, rel in members if not m.is_dir() and rel.parts]
            if not files:
                raise DownloadError(f"archive {archive} (from {marker['url']}) contains no files")
            # BEIR zips hold a top-level `name/` folder; a flat archive is taken as is.
            strip = all(rel.parts[0] == name and len(rel.parts) > 1 for _, rel in files)
            need = sum(m.file_size for m, _ in files)
            free = shutil.disk_usage(data_dir).free
            if need > free:
                raise DownloadError(
                    f"not enough disk space in {data_dir} to extract {archive}: "
                    f"{need / 1e9:.2f} GB needed, {free / 1e9:.2f} GB free"
                )
            tmp = data_dir / f".{name}.tmp-{uuid.uuid4().hex[:12]}"
            tmp.mkdir()  # not mkdtemp: the dataset folder gets the usual umask permissions, not 0700
            root = tmp.resolve()
            for m, rel in files:
                rel = PurePosixPath(*rel.parts[1:]) if strip else rel
                dest = tmp.joinpath(*rel.parts)
                if not dest.resolve().is_relative_to(root):  # belt and braces
                    raise DownloadError(f"unsafe archive {archive}: entry {m.filename!r} escapes; refused")
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with zf.open(m) as src, open(dest, "xb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                    raise DownloadError(
                        f"corrupt archive {archive} (from {marker['url']}): entry {m.filename!r}: {e}"
                    ) from None
                except FileExistsError:
                    raise DownloadError(f"archive {archive}: entry {m.filename!r} appears twice") from None
        units = registry.evaluation_units(name, data_dir)  # paths under data_dir/name, i.e. tmp
        missing = [u for u, p in units if not (tmp / p.relative_to(target) / "corpus.jsonl").is_file()]
        if missing:
            raise DownloadError(
                f"archive {archive} (from {marker['url']}) is not a BEIR dataset: no corpus.jsonl "
                f"for {', '.join(missing[:3])}"
            )
        record = dict(marker, downloaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        write_record(tmp)
        _move_into_place(tmp, target)
        tmp = None
        return target
    except OSError as e:
        raise DownloadError(f"could not extract {archive} into {data_dir}: {e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not keep:
            with suppress(OSError):
                archive.unlink()


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`; an older download of ours (stale md5) is swapped out first."""
    if not target.exists():
        os.replace(tmp, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(tmp, target)
    except OSError:
        os.replace(old / target.name, target)  # put the old one back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
