"""Each shim of `gtr_eval.compat` still behaves as the package relies on, and no other module of the
package names a private attribute of a dependency."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from gtr_eval import compat

PACKAGE = Path(__file__).resolve().parents[1] / "gtr_eval"
PRIVATE_NAMES = (
    "_select_tfc_scorer",
    "_select_idf_scorer",
    "_build_nonoccurrence_array",
    "_infer_stopwords",
    "_sparsetools",
    "_CLASS_REF_ALIASES",
    "_load_module_class_from_ref",
    "_get_module_init_defaults",
)

# The BM25 variants of Kamphuis et al. (ECIR 2020), as bm25s documents them: tf part and idf.
TF = np.array([1.0, 2.0, 5.0], np.float32)
LD = np.array([10.0, 40.0, 25.0], np.float32)
L_AVG, K1, B, DELTA, N = 25.0, 1.5, 0.75, 0.5, 1000


def _norm(ld):
    return 1 - B + B * ld / L_AVG


HAND_TFC = {
    "robertson": lambda tf, ld: tf / (K1 * _norm(ld) + tf),
    "lucene": lambda tf, ld: tf / (K1 * _norm(ld) + tf),
    "atire": lambda tf, ld: tf * (K1 + 1) / (tf + K1 * _norm(ld)),
    "bm25l": lambda tf, ld: (K1 + 1) * (tf / _norm(ld) + DELTA) / (K1 + tf / _norm(ld) + DELTA),
    "bm25+": lambda tf, ld: (K1 + 1) * tf / (K1 * _norm(ld) + tf) + DELTA,
}
HAND_IDF = {
    "robertson": lambda df: math.log(max(1.0, (N - df + 0.5) / (df + 0.5))),
    "lucene": lambda df: math.log(1 + (N - df + 0.5) / (df + 0.5)),
    "atire": lambda df: math.log(N / df),
    "bm25l": lambda df: math.log((N + 1) / (df + 0.5)),
    "bm25+": lambda df: math.log((N + 1) / df),
}


@pytest.mark.parametrize("method", sorted(HAND_TFC))
def test_bm25s_score_parts_equal_the_published_formulas(method):
    tfc = compat.bm25s_tfc_scorer(method)(tf_array=TF, l_d=LD, l_avg=L_AVG, k1=K1, b=B, delta=DELTA)
    np.testing.assert_allclose(tfc, HAND_TFC[method](TF, LD), rtol=1e-6)
    idf = compat.bm25s_idf_scorer(method)
    for df in (1, 7, 600):  # 600 > N/2: robertson's idf is clipped at 0
        assert idf(df, N=N) == pytest.approx(HAND_IDF[method](df), rel=1e-12)


def test_bm25s_scorers_refuse_an_unknown_method():
    for select in (compat.bm25s_tfc_scorer, compat.bm25s_idf_scorer):
        with pytest.raises(ValueError):
            select("okapi")


@pytest.mark.parametrize("method", ["bm25l", "bm25+"])
def test_bm25s_nonoccurrence_is_the_score_of_a_missing_term(method):
    df = np.array([1, 7, 600])
    got = compat.bm25s_nonoccurrence(df, N, method, L_AVG, K1, B, DELTA)
    assert got.dtype == np.float32 and got.shape == df.shape
    want = [HAND_IDF[method](d) * HAND_TFC[method](0.0, L_AVG) for d in df]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert (got > 0).all()  # delta > 0: a missing term still scores


def test_csc_matvec_adds_a_column_range_into_the_buffer_in_place():
    matvec = compat.csc_matvec()
    assert matvec is not None, "scipy no longer has csc_matvec: search falls back to np.add.at (slower)"
    rng = np.random.default_rng(0)
    indices = rng.choice(50, 30, replace=False).astype(np.int32)
    data = rng.random(30, dtype=np.float32)
    buf = rng.random(50, dtype=np.float32)
    want = buf.copy()
    np.add.at(want, indices[5:20], data[5:20])
    matvec(len(buf), 1, np.array([5, 20], np.int32), indices, data, np.ones(1, np.float32), buf)
    np.testing.assert_array_equal(buf, want)  # the same float32 sums, bit for bit


def test_bm25s_stopwords_come_from_its_public_tokenizer():
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_GERMAN

    from gtr_eval.retrieval.bm25_index import _stopwords

    lucene_english = "a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with"
    assert _stopwords("en") == list(STOPWORDS_EN) and sorted(STOPWORDS_EN) == lucene_english.split()
    assert _stopwords("de") == list(STOPWORDS_GERMAN)
    assert _stopwords(None) == [] and _stopwords(["foo"]) == ["foo"]


def test_pylate_dense_spelling_loads_without_changing_sentence_transformers_for_the_process(tmp_path):
    from sentence_transformers import MultiVectorEncoder
    from sentence_transformers.base.modules.dense import Dense
    from sentence_transformers.multi_vector_encoder import model as mve
    from tiny_models import build_tiny_colbert

    before = dict(mve._CLASS_REF_ALIASES)
    folder = build_tiny_colbert(
        tmp_path / "lighton", layout="pylate", pylate_dense_type="pylate.models.Dense"
    )
    model = compat.multivector_encoder_class()(str(folder), device="cpu")
    assert isinstance(model, MultiVectorEncoder) and type(model).__name__ == "MultiVectorEncoder"
    assert type(model[1]) is Dense and model[1].module_input_name == "token_embeddings"
    assert mve._CLASS_REF_ALIASES == before
    if "pylate.models.Dense" not in before:  # the library itself still cannot read this spelling
        with pytest.raises(ValueError, match="pylate.models.Dense"):
            MultiVectorEncoder(str(folder), device="cpu")


def test_no_module_but_compat_names_a_private_dependency_attribute():
    pattern = re.compile("|".join(rf"\b{re.escape(n)}\b" for n in PRIVATE_NAMES))
    offenders = [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "compat.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    private_import = re.compile(
        r"from (?!gtr_eval|\.)[\w.]+ import .*\b_[a-z]\w*|import (?!gtr_eval)[\w.]+\._[a-z]"
    )
    offenders += [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in PACKAGE.rglob("*.py")
        if p.name != "compat.py"
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if private_import.search(line)
    ]
    assert not offenders, f"private dependency names outside gtr_eval/compat.py: {offenders}"
