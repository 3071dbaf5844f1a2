"""Download a BEIR dataset, verify it, and put it atomically into `data_dir/name`.

Sources (`source=`): `ukp`, BEIR's zip server (md5-verified zip, below); `hf-beir` and `hf-mteb`,
copies on the Hugging Face hub converted into the same folder layout (`hub.py`, row counts checked
against the registry); `auto` tries the registry's order and falls back to the next on failure.

Layout under `data_dir`:
- `.downloads/<name>/`  the zip while it downloads (pooch streams it into a randomly named temp
  file there and moves it to `<name>.zip` only once its md5 matches). The zip is deleted after a
  successful extraction, and also after a failed one (a zip that will not extract is useless), so a
  file in there is never mistaken for a finished download.
- `.downloads/<name>.lock`  a file lock: two processes downloading the same dataset into the same
  folder take turns; the second then finds the finished download and skips.
- `<name>/`  the dataset. It is extracted (or converted from the hub) into a temporary folder
  `data_dir/.<name>.tmp-*` and renamed into place in one step, with the marker
  `.gtr-eval-download.json` already inside (source; url and md5, or the hub repos, the commits
  fetched and each file's sha256; time), so a `<name>/` folder with a marker is always complete. A
  later call skips when the marker still matches the registry (same md5, same pinned hub copies).

Archives are checked before anything is written: entries with an absolute path, a drive letter,
a `..` component or a symlink are refused, and every extracted path is checked to stay inside the
temporary folder.
"""

from __future__ import annotations

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
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ..errors import PairError
from ..paths import BUNDLED
from . import registry
from .loader import DataError

MARKER = ".gtr-eval-download.json"
BASE_URL_ENV = "GTR_EVAL_BASE_URL"
RETRY_BACKOFF_S = 2.0  # seconds before the first retry; doubles each time (capped at 30 s)
DEMO_DIR = BUNDLED / "demo"

_DRIVE = re.compile(r"^[A-Za-z]:")


class DownloadError(PairError, RuntimeError):
    """A download, verification or extraction failed; the message says what and where."""

    stage = "download"


class _Retryable(DownloadError):
    """A fault that a retry may cure (connection, timeout, truncated body, HTTP 5xx)."""


def dataset_url(name: str, base_url: str | None = None) -> str:
    base = base_url or os.environ.get(BASE_URL_ENV) or registry.BEIR_BASE_URL
    return f"{base.rstrip('/')}/{name}.zip"


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

    `source`: `ukp` (BEIR's zip server), `hf-beir` or `hf-mteb` (the Hugging Face hub copies), or
    `auto`: the registry's order, falling back to the next source when one fails, saying so.
    `demo` returns the folder inside the package. Datasets BEIR cannot redistribute raise
    `DownloadError` saying how to obtain them, unless `data_dir/name` already holds a BEIR folder.
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

    import filelock  # lazy: keeps `gtr-eval datasets` fast

    downloads = data_dir / ".downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(downloads / f"{name}.lock")):
        if (done := _current_source(target, info, chain)) is not None:  # another process finished it
            _say(f"{name}: already downloaded at {target} (from {done})")
            return target
        if target.exists() and read_marker(target) is None:
            raise DownloadError(
                f"{target} exists but was not downloaded by gtr-eval (no {MARKER}); remove it to "
                "download again, or evaluate it as a local folder"
            )
        try:
            _fetch_first(info, chain, data_dir, downloads, base_url, progress, timeout, retries)
        finally:
            with suppress(OSError):
                downloads.rmdir()  # only if empty (the lock file usually remains)
    return target


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


def _fetch_first(info, chain, data_dir, downloads, base_url, progress, timeout, retries) -> None:
    """Try each source in turn; the first that yields a verified folder wins."""
    failures: list[tuple[str, Exception]] = []
    for i, src in enumerate(chain):
        try:
            if src == "ukp":
                detail = _fetch_ukp(info, data_dir, downloads, base_url, progress, timeout, retries)
            else:
                detail = _fetch_hub(info, src, data_dir, progress)
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
    raise DownloadError(f"{info.name}: every source failed: " + "; ".join(f"{s}: {e}" for s, e in failures))


def _fetch_ukp(info, data_dir, downloads, base_url, progress, timeout, retries) -> str:
    assert info.md5 is not None
    url = dataset_url(info.name, base_url)
    work = downloads / info.name
    shutil.rmtree(work, ignore_errors=True)  # leftovers of a killed run: never trusted
    work.mkdir()
    try:
        zip_path = _fetch(url, info.md5, work, progress=progress, timeout=timeout, retries=retries)
        marker = {"name": info.name, "source": "ukp", "url": url, "md5": info.md5}
        _extract(zip_path, info.name, data_dir, marker=marker)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"md5 {info.md5}"


def _fetch_hub(info, source: str, data_dir: Path, progress: bool) -> str:
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
                provenance.append(hub.fetch_unit(source, copy, info.split, expected, out, progress=progress))
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
    forum's is one level up), else a local folder."""
    for f in (Path(folder), Path(folder).parent):
        if (marker := read_marker(f)) is not None:
            keep = ("url", "md5", "hub", "downloaded_at")
            return {"source": marker.get("source", "ukp"), **{k: marker[k] for k in keep if k in marker}}
    return {"source": "bundled" if Path(folder) == DEMO_DIR else "local folder"}


def _current_source(target: Path, info: registry.DatasetInfo, chain: list[str]) -> str | None:
    """The source `target` was downloaded from, if it is one of `chain` and still what the registry
    names (the same md5; the same hub copies); None when it must be fetched (again)."""
    marker = read_marker(target)
    if not marker:
        return None
    src = marker.get("source", "ukp")  # markers written before hub sources existed are ukp's
    if src not in chain:
        return None
    if src == "ukp":
        return src if marker.get("md5") == info.md5 else None
    return src if marker.get("pins") == _pins(info, src) else None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Fetch


def _fetch(url: str, md5: str, work: Path, *, progress: bool, timeout: float, retries: int) -> Path:
    attempts = max(0, int(retries)) + 1
    for attempt in range(attempts):
        try:
            return _fetch_once(url, md5, work, progress=progress, timeout=timeout)
        except _Retryable as e:
            if attempt == attempts - 1:
                raise DownloadError(f"{e} (gave up after {attempts} attempt(s))") from None
            wait = min(RETRY_BACKOFF_S * 2**attempt, 30.0)
            _say(f"{e}; retrying in {wait:g} s ({attempts - attempt - 1} left)")
            time.sleep(wait)
    raise AssertionError("unreachable")


def _fetch_once(url: str, md5: str, work: Path, *, progress: bool, timeout: float) -> Path:
    import pooch
    import requests

    pooch.get_logger().setLevel(logging.INFO if progress else logging.WARNING)
    fname = url.rsplit("/", 1)[-1]
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"md5:{md5}",
            fname=fname,
            path=work,
            downloader=pooch.HTTPDownloader(progressbar=progress, timeout=timeout),
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


def _extract(archive: Path, name: str, data_dir: Path, marker: dict) -> Path:
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
        _move_into_place(tmp, target)
        tmp = None
        return target
    except OSError as e:
        raise DownloadError(f"could not extract {archive} into {data_dir}: {e}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
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
