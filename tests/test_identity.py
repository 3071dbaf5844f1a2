"""One identity for every result: a stored number is served only for the inputs that made it.

The cases a user meets, as a user types them (the CLI on the bundled demo set and copies of it):
another split, changed qrels, a changed model setting, a fused result of an older input run, old
results without an identity, and the recorded commit.  Then the property behind them: every ranking
field of every spec and every dataset file changes the identity, no setting does.  The same cases
on the real SciFact are in tests/test_identity_real.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import gtr_eval
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gtr_eval.cli import cli
from gtr_eval.data.units import DatasetUnit
from gtr_eval.identity import Identity, cache_fields, is_setting, record
from gtr_eval.paths import BUNDLED
from gtr_eval.results import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
DEMO = BUNDLED / "demo"
SHA = re.compile(r"sha256 ([0-9a-f]{4})… → ([0-9a-f]{4})…")


def _cli(*args: str):
    return CliRunner().invoke(cli, [*args])


def _run(results: Path, *args: str):
    return _cli("run", *args, "--results-dir", str(results), "--quiet")


def _demo_copy(tmp_path: Path, name: str = "demo-copy") -> Path:
    folder = shutil.copytree(DEMO, tmp_path / name)
    lines = (folder / "qrels" / "test.tsv").read_text().splitlines(keepends=True)
    (folder / "qrels" / "train.tsv").write_text("".join(lines[:1] + lines[1::2]))  # every other judgment
    return folder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused_line(output: str) -> str:
    (line,) = [x for x in output.splitlines() if x.startswith("[refused]")]
    return line


# --------------------------------------------------------------------------------- the user's cases


def test_another_split_is_another_result_stored_beside(tmp_path):
    folder, results = _demo_copy(tmp_path), tmp_path / "r"
    test = _run(results, "-m", "bm25", "-d", str(folder))
    train = _run(results, "-m", "bm25", "-d", str(folder), "--split", "train")
    assert test.exit_code == 0 and train.exit_code == 0, test.output + train.output
    assert "[done] bm25 on demo-copy (train split)" in train.output and "[skip]" not in train.output
    on_test = ResultsStore(results).load("bm25", "demo-copy")
    on_train = ResultsStore(results).load("bm25", "demo-copy", "train")
    assert on_train.path == results / "bm25" / "demo-copy@train.json" and on_train.split == "train"
    assert on_test.split == "test" and on_test.metrics["ndcg@10"] != on_train.metrics["ndcg@10"]
    # each is served for its own split, and the table names the split that is not the default
    again = _run(results, "-m", "bm25", "-d", str(folder), "--split", "train")
    assert "[skip] bm25 on demo-copy (train split): already done" in again.output
    assert f"{on_train.metrics['ndcg@10']:.4f}" in again.output
    assert f"{on_test.metrics['ndcg@10']:.4f}" in _run(results, "-m", "bm25", "-d", str(folder)).output
    table = _cli("table", "--results-dir", str(results), "--metric", "ndcg@10")
    assert "demo-copy [train]" in table.output and re.search(r"\| demo-copy +\|", table.output)


@pytest.mark.parametrize("file", ["qrels/test.tsv", "corpus.jsonl", "queries.jsonl"])
def test_changed_data_under_the_same_name_is_refused_in_one_line(tmp_path, file):
    folder, results = _demo_copy(tmp_path), tmp_path / "r"
    assert _run(results, "-m", "bm25", "-d", str(folder)).exit_code == 0
    before = _sha(folder / file)
    lines = (folder / file).read_text().splitlines(keepends=True)
    (folder / file).write_text("".join(lines[:-2]))  # two judgments / documents / queries fewer
    refused = _run(results, "-m", "bm25", "-d", str(folder))
    assert refused.exit_code == 3
    line = _refused_line(refused.output)
    kind = file.split("/")[0].removesuffix(".jsonl")
    assert before != _sha(folder / file) and line == (
        f"[refused] bm25 on demo-copy was made with other {kind} ({file} differs); use --name NAME to keep "
        "both, or --overwrite to replace it"
    )
    assert "{" not in refused.output  # never a dict dump
    stale = ResultsStore(results).load("bm25", "demo-copy").metrics
    replaced = _run(results, "-m", "bm25", "-d", str(folder), "--overwrite")
    fresh = _run(tmp_path / "fresh", "-m", "bm25", "-d", str(folder))
    assert replaced.exit_code == 0 and fresh.exit_code == 0
    got = ResultsStore(results).load("bm25", "demo-copy").metrics
    assert got == ResultsStore(tmp_path / "fresh").load("bm25", "demo-copy").metrics
    if file != "corpus.jsonl":  # a corpus two documents shorter may rank the demo's queries alike
        assert got != stale


def test_a_changed_model_setting_is_a_variant_and_an_explicit_name_refuses_it(tmp_path):
    results = tmp_path / "r"
    assert _run(results, "-m", "all-MiniLM-L6-v2", "-d", "demo").exit_code == 0
    assert ResultsStore(results).load("all-MiniLM-L6-v2", "demo").metrics["ndcg@10"] == pytest.approx(
        0.9905, abs=5e-5
    )
    shorter = _run(results, "-m", "all-MiniLM-L6-v2", "-d", "demo", "--max-length", "8")
    assert shorter.exit_code == 0 and "[done] all-MiniLM-L6-v2[max_length=8] on demo" in shorter.output
    named = _run(
        results, "-m", "all-MiniLM-L6-v2", "-d", "demo", "--max-length", "8", "--name", "all-MiniLM-L6-v2"
    )
    assert named.exit_code == 3
    assert _refused_line(named.output) == (
        "[refused] all-MiniLM-L6-v2 on demo was made with other settings (max_length 256 → 8; query_max_length "
        "256 → 8); use --name NAME to keep both, or --overwrite to replace it"
    )
    fresh = _run(tmp_path / "fresh", "-m", "all-MiniLM-L6-v2", "-d", "demo", "--max-length", "8")
    assert fresh.exit_code == 0
    got = ResultsStore(results).load("all-MiniLM-L6-v2[max_length=8]", "demo").metrics
    assert got == ResultsStore(tmp_path / "fresh").load("all-MiniLM-L6-v2[max_length=8]", "demo").metrics
    assert got["ndcg@10"] == pytest.approx(0.9525, abs=5e-5)


def test_a_fused_result_of_an_older_input_run_is_refused(tmp_path):
    results = tmp_path / "r"
    assert _run(results, "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "demo").exit_code == 0
    fuse = ["fuse", "--rrf", "bm25", "all-MiniLM-L6-v2", "-d", "demo", "--results-dir", str(results)]
    assert _cli(*fuse).exit_code == 0
    served = _cli(*fuse)
    assert (
        served.exit_code == 0 and "[skip] rrf(bm25+all-MiniLM-L6-v2) on demo: already done" in served.output
    )
    old_run = _sha(ResultsStore(results).load("all-MiniLM-L6-v2", "demo").run_path)
    rerun = _run(results, "-m", "all-MiniLM-L6-v2", "-d", "demo", "--max-length", "8", "--name",
                 "all-MiniLM-L6-v2", "--overwrite")  # fmt: skip
    assert rerun.exit_code == 0
    refused = _cli(*fuse)
    assert refused.exit_code == 3
    new_run = _sha(ResultsStore(results).load("all-MiniLM-L6-v2", "demo").run_path)
    assert old_run != new_run and _refused_line(refused.output) == (
        "[refused] rrf(bm25+all-MiniLM-L6-v2) on demo was made with other input runs (the run of "
        "all-MiniLM-L6-v2 differs); use --name NAME to keep both, or --overwrite to replace it"
    )
    assert _cli(*fuse, "--overwrite").exit_code == 0
    inputs = ResultsStore(results).load("rrf(bm25+all-MiniLM-L6-v2)", "demo").spec["inputs"]
    assert [(i["system"], i["run_sha256"]) for i in inputs] == [
        ("bm25", _sha(ResultsStore(results).load("bm25", "demo").run_path)),
        ("all-MiniLM-L6-v2", new_run),
    ]


def test_a_record_without_an_identity_is_not_a_result(tmp_path):
    """A JSON that does not say what made it is not served: tables refuse it naming the file, and a
    run computes the pair again."""
    results = tmp_path / "r"
    assert _run(results, "-m", "bm25", "-d", "demo").exit_code == 0
    path = ResultsStore(results).path("bm25", "demo")
    record_ = json.loads(path.read_text())
    del record_["identity"]
    path.write_text(json.dumps(record_))
    table = _cli("table", "--results-dir", str(results))
    assert table.exit_code != 0 and f"{path}: not a result record" in table.output
    assert not ResultsStore(results).done("bm25", "demo")
    again = _run(results, "-m", "bm25", "-d", "demo")
    assert again.exit_code == 0 and "[done] bm25 on demo" in again.output
    assert ResultsStore(results).load("bm25", "demo").identity is not None


def test_a_done_pair_is_decided_before_its_retriever_is_built_and_without_hashing_weights(
    tmp_path, monkeypatch
):
    from gtr_eval.pipeline import runner
    from gtr_eval.retrieval import weights

    results = tmp_path / "r"
    assert _run(results, "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "demo").exit_code == 0
    monkeypatch.setattr(runner, "build", lambda *a, **k: pytest.fail("a retriever was built for a done pair"))
    real_open = open

    class _HeaderOnly:
        """A weights file that may be peeked at (a safetensors header, for the backend choice) but
        not read through: hashing reads 4 MiB blocks."""

        def __init__(self, fh):
            self.fh = fh

        def read(self, n: int = -1) -> bytes:
            if n < 0 or n >= 1 << 22:
                pytest.fail("weights were hashed again")
            return self.fh.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.fh.close()

    monkeypatch.setattr(weights, "open", lambda *a, **k: _HeaderOnly(real_open(*a, **k)), raising=False)
    again = _run(results, "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "demo")
    assert again.exit_code == 0 and again.output.count("already done") == 2


def test_each_retriever_of_a_sweep_is_built_when_needed_and_released_after_its_last_dataset(
    tmp_path, monkeypatch
):
    from gtr_eval.pipeline import runner

    events, real_build = [], runner.build

    def build(spec, cache_dir=None):
        retriever = real_build(spec, cache_dir)
        events.append(("build", spec.system))
        close = retriever.close

        def closing():
            events.append(("close", spec.system))
            close()

        retriever.close = closing
        return retriever

    monkeypatch.setattr(runner, "build", build)
    folder = _demo_copy(tmp_path)
    out = _run(tmp_path / "r", "-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "demo", "-d", str(folder))
    assert out.exit_code == 0, out.output
    assert events == [("build", "bm25"), ("close", "bm25"), ("build", "all-MiniLM-L6-v2"),
                      ("close", "all-MiniLM-L6-v2")]  # fmt: skip


def test_the_recorded_commit_is_gtr_evals_own_whatever_repository_the_shell_is_in(tmp_path):
    other = tmp_path / "their-repo"
    other.mkdir()
    git = ["git", "-c", "user.name=x", "-c", "user.email=x@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=other, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "theirs"], cwd=other, check=True)
    theirs = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=other, capture_output=True, text=True
    ).stdout.strip()
    ours = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = gtr_eval("run", "-m", "bm25", "-d", "demo", "--results-dir", "r", "--quiet", cwd=other, env=env)
    assert out.returncode == 0, out.stderr
    manifest = ResultsStore(other / "r").load("bm25", "demo").manifest
    assert manifest["git_commit"] == ours != theirs and isinstance(manifest["git_dirty"], bool)
    assert manifest["versions"]["gtr_eval"]
    # an installed copy (no checkout around the package) records no commit, not the shell's
    installed = tmp_path / "site"
    shutil.copytree(ROOT / "gtr_eval", installed / "gtr_eval", ignore=shutil.ignore_patterns("__pycache__"))
    probe = "from gtr_eval.results import ResultsStore, source_commit; print(source_commit())"
    shown = subprocess.run([sys.executable, "-c", probe], cwd=other, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(installed)))  # fmt: skip
    assert shown.stdout.strip() == "{'git_commit': None}", shown.stderr


def test_the_cli_and_the_python_api_build_the_same_run_config(tmp_path, monkeypatch):
    from gtr_eval import api
    from gtr_eval.pipeline import runner

    seen = []
    monkeypatch.setattr(runner, "run", lambda cfg, echo=print: seen.append(cfg) or runner.RunResults())
    args = ["-m", "bm25", "-m", "all-MiniLM-L6-v2", "-d", "demo", "--top-k", "50", "--max-length", "64",
            "--bm25-k1", "0.9", "--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "r")]  # fmt: skip
    assert _cli("run", *args).exit_code == 0
    expected = api.run_config(["bm25", "all-MiniLM-L6-v2"], ["demo"], top_k=50, max_length=64, bm25_k1=0.9,
                              data_dir=tmp_path, results_dir=tmp_path / "r")  # fmt: skip
    assert seen == [expected]
    # and with every default: what `gtr-eval run -m bm25 -d demo` does is what `api.run` does
    assert _cli("run", "-m", "bm25", "-d", "demo").exit_code == 0
    assert seen[-1] == api.run_config(["bm25"], ["demo"]) and seen[-1].options.backend == "auto"
    assert api.plan(["bm25"], ["demo"], results_dir=tmp_path) == _cli("run", "-m", "bm25", "-d", "demo",
                                                                      "--results-dir", str(tmp_path), "--plan").output  # fmt: skip


# ----------------------------------------------------------------------------------- the property


def _specs():
    """One spec of every family, every field set to a value of its own type (so a mutation is real)."""
    from gtr_eval.fusion import FusionParams, FusionSpec
    from gtr_eval.pipeline.imported import ImportSpec
    from gtr_eval.retrieval.bm25 import BM25Config, BM25Spec
    from gtr_eval.retrieval.dense import DenseSpec
    from gtr_eval.retrieval.multivector import MultiVectorSpec
    from gtr_eval.retrieval.rerank import RerankSpec
    from gtr_eval.retrieval.sparse import SparseSpec
    from gtr_eval.retrieval.spec import InputRun

    run = InputRun(
        system="bm25", run_sha256="a" * 64, result="r/bm25/demo.json", model={"retriever": "bm25s"}
    )
    model = dict(
        model="m", model_path="/m", hub_id="org/m", revision="c" * 40, preset="p", weights_sha256="b" * 64
    )
    encoded = dict(**model, query_weights_sha256="d" * 64, doc_prompt="passage: ", query_prompt="query: ",
                   max_length=256, query_max_length=64, dtype="fp32", batch_size=16, device="cpu",
                   trust_remote_code=False, shard_size=2048, progress=True)  # fmt: skip
    return [
        BM25Spec(system="bm25", bm25=BM25Config(), workers=2),
        DenseSpec(
            system="d",
            **encoded,
            score="cos",
            pooling="mean",
            routes="r",
            quantization="q",
            cache_dtype="fp32",
            query_model="qm",
            query_model_path="/qm",
            query_hub_id="org/qm",
            query_revision="e" * 40,
            backend="torch",
            backend_requested="auto",
            backend_reason="why",
            devices=("cpu", "cpu"),
            threads=2,
        ),  # fmt: skip
        SparseSpec(system="s", **encoded),
        MultiVectorSpec(
            system="mv",
            **encoded,
            token_dtype="float16",
            search="rerank",
            depth=100,
            candidates="bm25",
            forced_full=False,
            full_max_docs=10,
            inputs=(run,),
        ),  # fmt: skip
        RerankSpec(
            system="bm25>>ce",
            **model,
            max_length=512,
            dtype="fp32",
            depth=100,
            top_k=100,
            candidates="bm25",
            batch_size=8,
            device="cpu",
            shard_size=64,
            inputs=(run,),
        ),  # fmt: skip
        FusionSpec(
            system="rrf(a+b)",
            fusion=FusionParams("minmax", norm="min-max", weights=(0.3, 0.7)),
            systems=("a", "b"),
            inputs=(run, dataclasses.replace(run, system="b", run_sha256="f" * 64)),
        ),
        ImportSpec(system="ext", inputs=(run,), top_k=1000, imported={"run_file": "x"}),
    ]


SPECS = _specs()
FIELDS = [(i, f.name) for i, spec in enumerate(SPECS) for f in dataclasses.fields(spec)]


def _other(value, draw) -> tuple[object, bool]:
    """A value of `value`'s kind that differs from it, and whether the difference is in a ranking
    field (a nested spec, such as an input run, has settings of its own)."""
    if dataclasses.is_dataclass(value):
        f = draw(st.sampled_from(dataclasses.fields(value)))
        new, ranks = _other(getattr(value, f.name), draw)
        return dataclasses.replace(value, **{f.name: new}), ranks and not is_setting(f)
    if isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
        i = draw(st.integers(0, len(value) - 1))
        new, ranks = _other(value[i], draw)
        return value[:i] + (new,) + value[i + 1 :], ranks
    return _plain(value, draw), True


def _plain(value, draw):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return draw(st.integers(-(10**6), 10**6).filter(lambda x: x != value))
    if isinstance(value, float):
        return draw(st.floats(-10, 10, allow_nan=False).filter(lambda x: x != value))
    if isinstance(value, str):
        return draw(st.text(min_size=1, max_size=8).filter(lambda x: x != value))
    if isinstance(value, tuple):
        return (*value, value[0] if value else "x")
    if isinstance(value, dict):
        return {} if value else {"x": "y"}
    if value is None:
        return draw(st.one_of(st.text(min_size=1, max_size=4), st.integers(1, 99)))
    raise AssertionError(f"no mutation for {value!r}")


def _field(spec, name):
    return next(f for f in dataclasses.fields(spec) if f.name == name)


@pytest.mark.parametrize("where", FIELDS, ids=[f"{type(SPECS[i]).__name__}.{n}" for i, n in FIELDS])
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_every_ranking_field_changes_the_identity_and_no_setting_does(where, data):
    index, name = where
    spec = SPECS[index]
    fingerprint = {"name": "demo", "split": "test", "files_sha256": {"corpus.jsonl": "0" * 64}}
    value, ranks = _other(getattr(spec, name), data.draw)
    changed = dataclasses.replace(spec, **{name: value})
    base, new = Identity.of(spec, fingerprint), Identity.of(changed, fingerprint)
    f = _field(spec, name)
    caches = f.metadata.get("caches", ())
    if is_setting(f) or not ranks:
        assert new.digest == base.digest, (
            f"{type(spec).__name__}.{name} is a setting but changed the identity"
        )
        for cache in ("corpus", "queries", "pairs"):
            assert cache_fields(changed, cache) == cache_fields(spec, cache)
        assert record(changed) != record(spec)  # still recorded in the manifest
    else:
        assert new.digest != base.digest, (
            f"{type(spec).__name__}.{name} is a ranking field but left the identity"
        )
        for cache in ("corpus", "queries", "pairs"):
            assert (cache_fields(changed, cache) != cache_fields(spec, cache)) == (cache in caches)


def test_the_settings_are_what_cannot_change_a_ranking():
    """The declared settings, family by family: a new field is a ranking field unless declared so."""
    settings_of = {
        type(s).__name__: sorted(f.name for f in dataclasses.fields(s) if is_setting(f)) for s in SPECS
    }
    encoded = ["batch_size", "device", "hub_id", "model", "model_path", "preset", "progress", "revision",
               "shard_size", "system", "trust_remote_code"]  # fmt: skip
    assert settings_of == {
        "BM25Spec": ["progress", "system", "workers"],
        "DenseSpec": sorted(
            [
                *encoded,
                "backend",
                "backend_reason",
                "backend_requested",
                "devices",
                "query_hub_id",
                "query_model",
                "query_model_path",
                "query_revision",
                "threads",
            ]
        ),  # fmt: skip
        "SparseSpec": encoded,
        "MultiVectorSpec": sorted([*encoded, "candidates", "forced_full", "full_max_docs"]),
        "RerankSpec": sorted([*encoded, "below_depth", "candidates"]),
        "FusionSpec": ["progress", "system", "systems"],
        "ImportSpec": ["hardware", "imported", "system", "top_k"],
    }


def test_what_keys_each_cache_is_the_fields_that_change_its_vectors():
    """The fields each cache key is made of, family by family, written out: a ranking field that
    changes vectors but were left out of a key would serve cached vectors for other inputs."""
    keyed = {
        (type(s).__name__, cache): sorted(cache_fields(s, cache))
        for s in SPECS
        for cache in ("corpus", "queries", "pairs")
    }
    keyed = {k: v for k, v in keyed.items() if v}
    encoded_corpus = ["doc_prompt", "dtype", "max_length", "text_format", "weights_sha256"]
    encoded_queries = ["dtype", "query_max_length", "query_prompt", "query_weights_sha256"]
    assert keyed == {
        ("DenseSpec", "corpus"): sorted([*encoded_corpus, "cache_dtype", "quantization"]),
        ("DenseSpec", "queries"): sorted([*encoded_queries, "quantization"]),
        ("SparseSpec", "corpus"): encoded_corpus,
        ("SparseSpec", "queries"): encoded_queries,
        ("MultiVectorSpec", "corpus"): sorted([*encoded_corpus, "token_dtype"]),
        ("MultiVectorSpec", "queries"): encoded_queries,
        ("RerankSpec", "pairs"): ["dtype", "max_length", "pair_format", "weights_sha256"],
    }


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_dataset_file_and_the_split_change_the_fingerprint(tmp_path_factory, data):
    folder = _demo_copy(tmp_path_factory.mktemp("fp"))
    store = folder.parent / "store"
    unit = DatasetUnit("demo-copy", folder, "test")
    base = unit.fingerprint(store)
    assert set(base.files_sha256) == {"corpus.jsonl", "queries.jsonl", "qrels/test.tsv"}
    assert unit.fingerprint(store) == base  # memoised, and stable
    name = data.draw(st.sampled_from(sorted(base.files_sha256)))
    extra = data.draw(st.binary(min_size=1, max_size=16))
    with open(folder / name, "ab") as fh:
        fh.write(extra)
    changed = unit.fingerprint(store)
    assert changed.files_sha256[name] != base.files_sha256[name]
    assert Identity.of(SPECS[0], changed).digest != Identity.of(SPECS[0], base).digest
    train = dataclasses.replace(unit, split="train").fingerprint(store)
    assert Identity.of(SPECS[0], train).digest != Identity.of(SPECS[0], changed).digest
