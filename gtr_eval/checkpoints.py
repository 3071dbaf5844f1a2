"""Training checkpoints as systems: `NAME@step-N`, one name rule for the CLI sweep, the trainer
evaluator and the learning curve.

A trainer writes `out/checkpoint-1000/`, `out/checkpoint-2000/`, …; each is a system of its own,
named after the run folder and its step (`out@step-1000`), so `table`, `plot`, `report` and the
significance tests see a checkpoint as any other system, and `plot --curve` reads the step back from
the name.  The step in a folder name is the trainer's global step (`transformers`' `checkpoint-<step>`).
The functions below find checkpoint folders on disk and put them in step order (for `run -m out/` and
`run -m 'out/checkpoint-*'`); `retrieval.models.system_name` names each by this rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

STEP_MARK = "@step-"
_SYSTEM = re.compile(r"^(?P<run>.+)@step-(?P<step>\d+)$")


def checkpoint_system(run: str, step: int) -> str:
    """The system name of the checkpoint of training run `run` at global step `step`."""
    if step < 0:
        raise ValueError(f"a checkpoint's step is a non-negative integer, not {step}")
    return f"{run}{STEP_MARK}{int(step)}"


@dataclass(frozen=True)
class CheckpointName:
    """A system name read back as (training run, step)."""

    run: str
    step: int


def parse_checkpoint_system(system: str) -> CheckpointName | None:
    """`out@step-1000` -> CheckpointName("out", 1000); None for a system that is no checkpoint."""
    m = _SYSTEM.match(system)
    return CheckpointName(m["run"], int(m["step"])) if m else None


# ------------------------------------------------------------------------- finding checkpoints on disk
# A trainer's checkpoint folder, as `transformers.trainer_utils` names it (`PREFIX_CHECKPOINT_DIR`).
_FOLDER = re.compile(r"^checkpoint-(?P<step>\d+)$")
P = TypeVar("P", str, Path)


def checkpoint_step(folder: Path | str) -> int | None:
    """The global step of a trainer's `checkpoint-<N>` folder, read from its name; None for another."""
    m = _FOLDER.match(Path(folder).name)
    return int(m["step"]) if m else None


def step_of_folder(spec: str) -> int | None:
    """The step of a `-m` that names an existing checkpoint folder; None for anything else (a hub id
    shaped like `org/checkpoint-1000` included)."""
    step = checkpoint_step(spec)
    return step if step is not None and Path(spec).expanduser().is_dir() else None


def run_folder(checkpoint: Path | str) -> Path:
    """The training run a checkpoint belongs to: the folder the trainer wrote it into (`out` for
    `out/checkpoint-1000`, also when the checkpoint is given relative to the current folder)."""
    return Path(checkpoint).expanduser().absolute().parent


def find_checkpoints(folder: Path | str) -> list[Path]:
    """The `checkpoint-<N>` folders directly inside a trainer's output folder, in step order."""
    found = [p for p in Path(folder).iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return in_step_order(found)


def in_step_order(folders: Iterable[P]) -> list[P]:
    """Checkpoints of each run in numeric step order (`checkpoint-500` before `checkpoint-1000`, which
    a name sort and the shell's glob put the other way round), runs by their folders' paths."""
    return sorted(folders, key=lambda p: (str(run_folder(p)), checkpoint_step(p) or 0))
