"""A full disk (ENOSPC) names the path being written and how much it needed or had written, in one
line: Python's own `[Errno 28] No space left on device` names neither."""

from __future__ import annotations

import errno
import os

import pytest
from click.testing import CliRunner

from gtr_eval import io
from gtr_eval.cli import cli


def _no_space(*_args, **_kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_an_atomic_write_names_the_path_and_sizes(tmp_path, monkeypatch):
    target = tmp_path / "out" / "vectors.npy"
    monkeypatch.setattr(io.os, "fsync", _no_space)  # the write's last step fails, as on a full disk
    with pytest.raises(io.DiskFull) as e:
        io.atomic_write_bytes(target, b"x" * 3000)
    monkeypatch.undo()
    message = str(e.value)
    assert message.startswith(f"disk full writing {target} (2.9 kB needed; 2.9 kB written when it ran out; ")
    assert "free there" in message and "\n" not in message
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert not target.exists() and not io.temp_files(target)  # nothing half-written is left


def test_a_streamed_write_reports_what_it_had_written(tmp_path):
    target = tmp_path / "run.trec"
    with pytest.raises(io.DiskFull, match=r"disk full writing .*run\.trec \(12 B written when it ran out; "):
        with io.atomic_writer(target) as fh:
            fh.write(b"q1 Q0 d1 1 \n")
            fh.flush()
            _no_space()
    assert not target.exists() and not io.temp_files(target)


def test_run_on_a_full_disk_says_so_in_one_line_naming_the_cache_folder(tmp_path, monkeypatch):
    """The first artifact of `run -m bm25 -d demo` (the corpus store) meets a full disk: exit 1, one
    line naming the folder being built under --cache-dir, nothing left in place of it."""
    from gtr_eval import artifacts

    monkeypatch.setattr(artifacts, "write_record", lambda folder: _no_space())
    cache = tmp_path / "cache"
    out = CliRunner().invoke(cli, ["run", "-m", "bm25", "-d", "demo", "--results-dir", str(tmp_path / "r"),
                                   "--cache-dir", str(cache), "--quiet"])  # fmt: skip
    assert out.exit_code == 1, out.output
    (line,) = out.output.strip().splitlines()
    assert (
        line.startswith(f"Error: disk full writing {cache / 'corpus'}") and "written when it ran out" in line
    )
    assert not [p for p in (cache / "corpus").glob("*/*") if p.is_dir()]  # no store, no half-built folder
    assert not list((tmp_path / "r").rglob("*.json"))
