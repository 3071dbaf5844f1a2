"""Variant names from specs: what differs from the preset's spec in ranking fields only, in the spec's
order, values written canonically; and selecting systems whose names hold glob characters."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gtr_eval.checkpoints import CheckpointName, parse_checkpoint_system
from gtr_eval.identity import record, variant_suffix
from gtr_eval.results import ResultsStore, matching, validate_name
from gtr_eval.retrieval.bm25 import BM25Config, BM25Spec
from gtr_eval.retrieval.dense import DenseSpec
from gtr_eval.retrieval.factory import RetrieverOptions, resolve_named

PRESET = BM25Spec(system="bm25")


def _bm25(**changed) -> BM25Spec:
    return replace(PRESET, bm25=replace(PRESET.bm25, **changed))


def test_the_suffix_names_ranking_changes_in_declaration_order():
    assert variant_suffix(PRESET, PRESET) == ""
    assert variant_suffix(PRESET, _bm25(k1=0.9)) == "[k1=0.9]"
    assert variant_suffix(PRESET, _bm25(b=0.4, k1=0.9)) == "[k1=0.9,b=0.4]"
    assert variant_suffix(PRESET, replace(_bm25(method="atire"), top_k=100)) == "[top_k=100,method=atire]"
    assert variant_suffix(PRESET, _bm25(stopwords=None, stemmer=None)) == "[stopwords=none,stemmer=none]"


def test_settings_never_enter_the_name():
    assert variant_suffix(PRESET, replace(PRESET, workers=7, progress=False, system="other")) == ""
    dense = DenseSpec(system="m", weights_sha256="ab" * 32, max_length=256, query_max_length=256)
    busy = replace(dense, batch_size=7, device="cuda:1", threads=3, backend="onnx", devices=("cpu", "cpu"))
    assert variant_suffix(dense, busy) == ""
    assert variant_suffix(dense, replace(busy, max_length=128, query_max_length=128, dtype="fp16")) == (
        "[max_length=128,dtype=fp16]"
    )


def test_values_are_written_canonically():
    assert variant_suffix(PRESET, _bm25(k1=float("0.9"))) == "[k1=0.9]"
    assert variant_suffix(PRESET, _bm25(k1=0.1 + 0.2)) == "[k1=0.30000000000000004]"  # another value
    assert variant_suffix(PRESET, _bm25(k1=2.0)) == "[k1=2.0]"
    dense = DenseSpec(system="m")
    prompted = variant_suffix(dense, replace(dense, query_prompt="query: ", doc_prompt="passage/x, y=z]"))
    assert re.fullmatch(r"\[doc_prompt=#[0-9a-f]{8},query_prompt=#[0-9a-f]{8}\]", prompted)
    assert prompted == variant_suffix(
        dense, replace(dense, doc_prompt="passage/x, y=z]", query_prompt="query: ")
    )
    assert variant_suffix(dense, replace(dense, query_prompt="other: ")) != variant_suffix(
        dense, replace(dense, query_prompt="query: ")
    )


def test_a_long_suffix_is_one_digest_and_every_name_is_a_valid_file_name(tmp_path):
    many = replace(_bm25(k1=0.123456789, b=0.987654321, method="robertson", delta=0.25), top_k=123,
                   text_format="x" * 40, token_pattern="y" * 40, lowercase=False)  # fmt: skip
    long = variant_suffix(PRESET, many)
    assert long.startswith("[#") and len(long) == 15
    for suffix in (long, "[k1=0.9,b=0.4]", variant_suffix(PRESET, _bm25(stopwords=None))):
        validate_name("bm25" + suffix, "system", max_slashes=0)
        path = ResultsStore(tmp_path).path("bm25" + suffix, "demo")
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        assert os.listdir(tmp_path).count("bm25" + suffix) == 1


def test_resolve_named_measures_from_the_default_options():
    opts = RetrieverOptions(progress=False)
    assert resolve_named("bm25", opts).system == "bm25"
    assert resolve_named("bm25", replace(opts, bm25=BM25Config(k1=0.9))).system == "bm25[k1=0.9]"
    assert resolve_named("bm25", replace(opts, batch_size=3, processes=2)).system == "bm25"
    assert resolve_named("bm25", opts, top_k=10).system == "bm25[top_k=10]"


@pytest.mark.parametrize(
    ("pattern", "selected"),
    [
        ("bm25[k1=0.9]", ["bm25[k1=0.9]"]),  # a name: itself, though `[k1=0.9]` is also a glob's class
        ("bm25", ["bm25"]),
        ("bm25*", ["bm25", "bm25[k1=0.9]", "bm25[k1=0.9,b=0.4]", "bm25k"]),
        ("bm25[[]*", ["bm25[k1=0.9]", "bm25[k1=0.9,b=0.4]"]),
        ("bm25[k]", ["bm25k"]),  # not a name: the glob
        ("nope*", []),
    ],
)
def test_a_name_selects_itself_before_it_is_read_as_a_glob(pattern, selected):
    names = ["bm25", "bm25[k1=0.9]", "bm25[k1=0.9,b=0.4]", "bm25k", "rrf(bm25+bm25[k1=0.9])"]
    assert matching(pattern, names) == selected


def test_a_field_that_follows_another_is_named_only_when_set_apart():
    dense = DenseSpec(system="m", max_length=256, query_max_length=256)
    assert variant_suffix(dense, replace(dense, max_length=8, query_max_length=8)) == "[max_length=8]"
    assert variant_suffix(dense, replace(dense, query_max_length=8)) == "[query_max_length=8]"
    # the leader changed, the follower kept its value: said, or it would read as following
    assert variant_suffix(dense, replace(dense, max_length=8)) == "[max_length=8,query_max_length=256]"


_DENSE = DenseSpec(system="m", max_length=256, query_max_length=256, query_prompt="query: ")
_VALUES = {
    "max_length": st.sampled_from([8, 128, 256]),
    "query_max_length": st.sampled_from([8, 128, 256]),
    "dtype": st.sampled_from(["fp32", "fp16", "none", None]),
    "query_prompt": st.sampled_from([None, "query: ", "none", "0.9", "x"]),
    "score": st.sampled_from(["cos", "dot"]),
    "top_k": st.sampled_from([10, 1000]),
}


@given(st.fixed_dictionaries(_VALUES), st.fixed_dictionaries(_VALUES))
@settings(max_examples=300, deadline=None)
def test_two_specs_that_rank_differently_never_share_a_name(a, b):
    one, two = replace(_DENSE, **a), replace(_DENSE, **b)
    if record(one, ranking_only=True) != record(two, ranking_only=True):
        assert variant_suffix(_DENSE, one) != variant_suffix(_DENSE, two)
    else:
        assert variant_suffix(_DENSE, one) == variant_suffix(_DENSE, two)


def test_a_checkpoints_variant_keeps_its_step_last(tiny_gtr, tmp_path):
    checkpoint = shutil.copytree(tiny_gtr, tmp_path / "out" / "checkpoint-5")
    opts = RetrieverOptions(progress=False, cache_dir=tmp_path / "cache")
    assert resolve_named(str(checkpoint), opts).system == "out@step-5"
    shorter = resolve_named(str(checkpoint), replace(opts, max_length=8, batch_size=2))
    assert shorter.system == "out[max_length=8]@step-5"
    assert parse_checkpoint_system(shorter.system) == CheckpointName("out[max_length=8]", 5)
