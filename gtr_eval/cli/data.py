"""`gtr-eval datasets` (the registry) and `gtr-eval download` (fetch, verify, unpack)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import FAILED
from .options import base_url_option, data_dir_option, source_option


@click.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as a JSON list.")
def datasets_cmd(as_json: bool) -> None:
    """List the datasets gtr-eval knows (BEIR's 18 and the bundled demo), their sources and the sweeps."""
    from ..data.registry import datasets_json, datasets_table

    click.echo(datasets_json() if as_json else datasets_table())


@click.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@data_dir_option
@base_url_option
@source_option
@click.option(
    "--timeout", type=float, default=60.0, show_default=True, help="Seconds without data before giving up."
)
@click.option("--retries", type=click.IntRange(0, 20), default=2, show_default=True)
@click.option("--progress/--no-progress", default=True, show_default=True)
def download_cmd(
    names: tuple[str, ...],
    data_dir: Path,
    base_url: str | None,
    source: str,
    timeout: float,
    retries: int,
    progress: bool,
) -> None:
    """Download and verify BEIR datasets into DATA_DIR/NAME (BEIR's folder layout); prints each folder.

    Sweeps work too (`gtr-eval download beir-small`).  An unknown name stops it before any download
    (exit 2); a dataset that fails to download is reported and the others go on (exit 3)."""
    from ..data.download import download
    from ..data.registry import canonical_name, get, group
    from ..data.units import expand_datasets

    failed = 0
    wanted: list[str] = []
    for name in map(canonical_name, names):  # a sweep stands for its datasets
        if group(name) is None:
            get(name)  # an unknown name: a mistake, said before anything is downloaded
            wanted.append(name)
            continue
        selection = expand_datasets([name], data_dir)
        wanted += [n for n in selection.datasets if n not in wanted]
        for skipped, why in selection.skipped:
            click.echo(f"skip: {skipped}: {why}", err=True)
    for name in wanted:
        try:
            path = download(
                name,
                Path(data_dir),
                base_url=base_url,
                progress=progress,
                timeout=timeout,
                retries=retries,
                source=source,
            )
        except (RuntimeError, KeyError, ValueError, OSError) as e:
            click.echo(f"Error: {name}: {e}", err=True)
            failed += 1
        else:
            click.echo(str(path))
    if failed:
        sys.exit(FAILED)
