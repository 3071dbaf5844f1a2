"""`gtr-eval run` (evaluate models on datasets) and `gtr-eval encode` (fill the embedding cache)."""

from __future__ import annotations

import sys

import click

from .. import options as groups
from .options import click_options, datasets_option, model_pair_options, models_option, one_line_errors

RUN_HELP = {
    "name": "Store the (one) system under NAME: a variant beside the default one, e.g. -m bm25 --bm25-k1 0.9 "
    "--name bm25-k0.9. With checkpoints, NAME names their training run: NAME@step-N.",
}


def _echo(text: str) -> None:
    click.echo(text, err=True)


@click.command("run")
@models_option
@model_pair_options
@datasets_option
@click_options(groups.RUN, help=RUN_HELP)
@click.option(
    "--ray", "use_ray", is_flag=True, help="Encode corpora as Ray tasks first (see `gtr-eval encode`)."
)
@click.option("--ray-address", default=None, help="Ray cluster address  [default: a local Ray]")
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print what would be downloaded, what is done and a rough time per dataset, then exit.",
)
def run_cmd(
    models, pair, datasets, use_ray: bool, ray_address: str | None, plan_only: bool, **options
) -> None:
    """Evaluate MODELs on DATASETs; results go to RESULTS_DIR/<system>/<dataset>.json.

    Pairs already done are skipped (use --overwrite to redo them); an interrupted encode resumes from
    its last complete cache shard. A pair that fails is reported and skipped, the others go on; the
    exit code is then 3.  --query-model/--doc-model add one asymmetric system, named
    <query model>~<document model> (or the preset's name, e.g. dpr).  Dense models are
    encoded (--backend auto, the default) by ONNX Runtime in fp32 on a non-Intel CPU (same scores as
    torch in about half the time there), by torch on an Intel CPU (MKL is faster there) and on a GPU.

    \b
    Sweeps: -d beir (the 14 public BEIR sets), -d beir-small (those under 600k
    documents), -d paper (the GTR paper's 18, non-public ones when present).

    \b
    Examples:
      gtr-eval run -m bm25 -m gtr-t5-base -d scifact -d nfcorpus
      gtr-eval run -m bm25 -m gtr-t5-xl -d beir --plan
      gtr-eval run -m ./my-model --query-prompt "query: " -d ~/beir/fiqa
      gtr-eval run -m 'out/checkpoint-*' -d scifact      # each checkpoint as out@step-N, in step order
      gtr-eval run -m dpr -m tas-b -d scifact
      gtr-eval run --query-model ./q-encoder --doc-model ./d-encoder --score dot -d scifact
    """
    from .. import api
    from ..pipeline.pairs import failure_summary, summary_table

    if not models and pair is None:
        raise click.UsageError("give at least one -m MODEL, or --query-model and --doc-model")
    requests = [*models, *([pair] if pair else [])]
    with one_line_errors():
        if plan_only:
            click.echo(api.plan(requests, list(datasets), **options), nl=False)
            return
        if use_ray:
            from ..distributed import ray_encode_for_run

            ray_encode_for_run(
                api.run_config(requests, list(datasets), **options), address=ray_address, echo=_echo
            )
        results = api.run(requests, list(datasets), echo=_echo, failures="collect", **options)
    if results:
        click.echo(summary_table(results))
    if results.failures:
        if summary := failure_summary(results):  # one failed pair: its line said it
            _echo(summary)
        sys.exit(3)


@click.command("encode")
@click.option(
    "-m", "--model", "models", multiple=True, required=True, help="Dense model (as for `run`). Repeatable."
)
@datasets_option
@click_options(groups.ENCODE)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Encode only the cache shards whose number % N == I (job I of N).",
)
@click.option("--ray", "use_ray", is_flag=True, help="Run the N shard jobs as Ray tasks, then merge.")
@click.option(
    "--ray-address", default=None, help="Ray cluster (e.g. auto, ray://head:10001)  [default: local]"
)
@click.option(
    "--ray-tasks", type=click.IntRange(1), default=None, help="N  [default: cluster CPUs / --ray-cpus]"
)
@click.option(
    "--ray-cpus", type=float, default=1.0, show_default=True, help="CPUs per Ray task (= its threads)."
)
@click.option("--ray-gpus", type=float, default=0.0, show_default=True, help="GPUs per Ray task.")
def encode_cmd(
    models,
    datasets,
    shard: str | None,
    use_ray: bool,
    ray_address: str | None,
    ray_tasks: int | None,
    ray_cpus: float,
    ray_gpus: float,
    **options,
) -> None:
    """Encode corpora into the embedding cache, all of it or one shard job's part.

    Use the same model options as the later `gtr-eval run` (they are part of the cache key); that run
    then finds every shard and only encodes the queries and searches.

    \b
    Examples:
      gtr-eval encode -m gtr-t5-base -d nq --shard $SLURM_ARRAY_TASK_ID/16 --cache-dir /shared/cache
      gtr-eval encode -m gtr-t5-base -d nq --ray --ray-address auto --cache-dir /shared/cache
    """
    from ..api import run_config
    from ..distributed import dense_models, describe, encode_job, parse_shard, ray_encode

    with one_line_errors():
        index = parse_shard(shard) if shard else (0, 1)
        if use_ray and shard:
            raise ValueError("--shard and --ray do not mix: --ray runs all N jobs (set N with --ray-tasks)")
        if options["no_cache"]:
            raise ValueError("encode fills the embedding cache: drop --no-cache")
        cfg = run_config(list(models), list(datasets), **options)
        cfg.check()  # a typo in a name, a split a dataset lacks: said before anything is downloaded
        units = cfg.units()
        dense = dense_models(cfg.models)  # a glob or a trainer's folder: its checkpoints
        if len(dense) < len(cfg.models):
            _echo("note: bm25 has no embeddings; skipped")
        if use_ray:
            ray_encode(
                dense,
                units,
                cfg.options,
                address=ray_address,
                tasks=ray_tasks,
                cpus_per_task=ray_cpus,
                gpus_per_task=ray_gpus,
                echo=_echo,
            )
            return
        for m in dense:
            for u in units:
                _echo(describe(encode_job(m, u, cfg.options, index)))
