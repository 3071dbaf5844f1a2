"""gtr_eval.loader: real BEIR folders, parity with BEIR's GenericDataLoader, bad input, fuzzing."""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gtr_eval.data.loader import DataError, load_beir_folder

SHARED_BEIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "beir"


def _real(name: str) -> Path:
    path = SHARED_BEIR / name
    if not (path / "corpus.jsonl").is_file():
        pytest.skip(f"real BEIR data not found at {path} (see ../shared/data/README.md)")
    return path


# ---------------------------------------------------------------------------------------------
# Real data


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, docs, queries, judgments",
    [("scifact", 5183, 300, 339), ("nfcorpus", 3633, 323, 12334)],
)
def test_real_counts(name, docs, queries, judgments):
    path = _real(name)
    assert b"\r\n" in (path / "qrels" / "test.tsv").read_bytes()[:200]  # BEIR ships CRLF qrels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the official sets load without any warning
        data = load_beir_folder(path, split="test")
    assert (len(data.corpus), len(data.queries)) == (docs, queries)
    assert sum(len(v) for v in data.qrels.values()) == judgments
    assert set(data.queries) == set(data.qrels)
    assert not any("\r" in q or any("\r" in d for d in ds) for q, ds in data.qrels.items())
    assert data.name == name and len(data.checksum) == 64


@pytest.mark.slow
def test_scifact_matches_beir_generic_data_loader():
    from beir.datasets.data_loader import GenericDataLoader

    path = _real("scifact")
    corpus, queries, qrels = GenericDataLoader(str(path)).load(split="test")
    data = load_beir_folder(path, split="test")
    assert data.corpus.ids == list(corpus)
    for i, doc_id in enumerate(data.corpus.ids):
        assert data.corpus.titles[i] == (corpus[doc_id]["title"] or "")
        assert data.corpus.bodies[i] == (corpus[doc_id]["text"] or "")
    assert data.queries == queries
    assert data.qrels == qrels


# ---------------------------------------------------------------------------------------------
# Bad input: each a DataError naming the file, the line and the problem

CORPUS = b'{"_id": "d1", "title": "T1", "text": "one"}\n{"_id": "d2", "text": "two"}\n{"_id": "d3", "text": "three"}\n'
QUERIES = b'{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'
QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t2\n"


def _write(root: Path, corpus: bytes = CORPUS, queries: bytes = QUERIES, qrels: bytes = QRELS) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_bytes(corpus)
    (root / "queries.jsonl").write_bytes(queries)
    (root / "qrels" / "test.tsv").write_bytes(qrels)
    return root


def test_small_folder_loads_with_crlf_qrels(tmp_path):
    data = load_beir_folder(_write(tmp_path, qrels=QRELS.replace(b"\n", b"\r\n")))
    assert data.corpus.ids == ["d1", "d2", "d3"] and data.corpus.text(0) == "T1 one"
    assert data.queries == {"q1": "first", "q2": "second"}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}


BAD = [
    ("invalid-json", "corpus.jsonl", {"corpus": CORPUS + b'{"_id": "d4", "text": \n'}, 4, "invalid JSON"),
    ("not-an-object", "queries.jsonl", {"queries": QUERIES + b'["q3", "x"]\n'}, 3, "expected a JSON object"),
    ("missing-_id", "corpus.jsonl", {"corpus": b'{"text": "x"}\n' + CORPUS}, 1, "missing field '_id'"),
    ("missing-text", "queries.jsonl", {"queries": QUERIES + b'{"_id": "q3"}\n'}, 3, "missing field 'text'"),
    ("empty-_id", "corpus.jsonl", {"corpus": CORPUS + b'{"_id": "", "text": "x"}\n'}, 4, "'_id' must be"),
    (
        "text-not-string",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d9", "text": 5}\n'},
        4,
        "must be a string",
    ),
    (
        "duplicate-doc",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d2", "text": "again"}\n'},
        4,
        "duplicate document id 'd2' (first on line 2)",
    ),
    (
        "duplicate-query",
        "queries.jsonl",
        {"queries": QUERIES + b'{"_id": "q1", "text": "again"}\n'},
        3,
        "duplicate query id 'q1'",
    ),
    (
        "non-utf8",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d4", "text": "caf\xe9"}\n'},
        4,
        "not valid UTF-8",
    ),
    ("qrels-header", "qrels/test.tsv", {"qrels": b"qid\tdid\tscore\nq1\td1\t1\n"}, 1, "bad header"),
    ("qrels-no-header", "qrels/test.tsv", {"qrels": b"q1\td1\t1\n"}, 1, "bad header"),
    (
        "qrels-score",
        "qrels/test.tsv",
        {"qrels": QRELS + b"q1\td2\t1.5\n"},
        4,
        "score '1.5' is not an integer",
    ),
    (
        "qrels-columns",
        "qrels/test.tsv",
        {"qrels": QRELS + b"q1\td2\n"},
        4,
        "expected 3 tab-separated columns, found 2",
    ),
    ("qrels-columns-4", "qrels/test.tsv", {"qrels": QRELS + b"q1\td2\t1\t0\n"}, 4, "found 4"),
    ("qrels-empty", "qrels/test.tsv", {"qrels": b"query-id\tcorpus-id\tscore\n"}, None, "no judgments"),
    ("empty-corpus", "corpus.jsonl", {"corpus": b""}, None, "empty corpus"),
    ("blank-corpus", "corpus.jsonl", {"corpus": b"\n \n"}, None, "empty corpus"),
    ("empty-queries", "queries.jsonl", {"queries": b"\n"}, None, "empty query set"),
    # Found by the fuzz test below; fixed in loader._json_record.
    (
        "lone-surrogate",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d4", "text": "\\ud800"}\n'},
        4,
        "surrogate",
    ),
    # Ids are one token of a TREC line: no whitespace, no control character; read as BEIR reads them
    (
        "doc-id-space",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "a b", "text": "x"}\n'},
        4,
        "document id 'a b' contains a space",
    ),
    (
        "doc-id-tab",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "a\\tb", "text": "x"}\n'},
        4,
        "document id 'a\\tb' contains a tab",
    ),
    (
        "doc-id-newline",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d4\\n", "text": "x"}\n'},
        4,
        "contains a newline",
    ),
    (
        "doc-id-c1",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": "d\xc2\x85", "text": "x"}\n'},
        4,
        "contains whitespace U+0085",
    ),
    (
        "query-id-trailing-space",
        "queries.jsonl",
        {"queries": QUERIES + b'{"_id": "q3 ", "text": "x"}\n'},
        3,
        "query id 'q3 ' contains a space",
    ),
    (
        "query-id-control",
        "queries.jsonl",
        {"queries": QUERIES + b'{"_id": "q\\u0001", "text": "x"}\n'},
        3,
        "contains a control character U+0001",
    ),
    (
        "qrels-query-id-space",
        "qrels/test.tsv",
        {"qrels": QRELS + b"q1 \td2\t1\n"},
        4,
        "query id 'q1 ' contains a space",
    ),
    (
        "qrels-doc-id-space",
        "qrels/test.tsv",
        {"qrels": QRELS + b"q1\t d2\t1\n"},
        4,
        "document id ' d2' contains a space",
    ),
    (
        "qrels-conflict",
        "qrels/test.tsv",
        {"qrels": QRELS + b"q2\td2\t0\nq1\td1\t2\n"},
        5,
        "query 'q1' judges document 'd1' 2, but 1 on line 2",
    ),
    ("deep-nesting", "queries.jsonl", {"queries": QUERIES + b"[" * 100_000 + b"\n"}, 3, "invalid JSON"),
    (
        "huge-number",
        "corpus.jsonl",
        {"corpus": CORPUS + b'{"_id": ' + b"9" * 5000 + b"}\n"},
        4,
        "invalid JSON",
    ),
]


@pytest.mark.parametrize("case, fname, files, line, problem", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_data_error(tmp_path, case, fname, files, line, problem):
    root = _write(tmp_path, **files)
    with pytest.raises(DataError) as e:
        load_beir_folder(root)
    err = e.value
    assert Path(err.path) == root / fname
    assert err.line == line
    assert problem in err.problem
    where = f"{root / fname}:{line}" if line else str(root / fname)
    assert str(err).startswith(where + ": ")


def test_identical_repeated_judgments_warn_once_and_count_once(tmp_path):
    qrels = QRELS + b"q1\td1\t1\nq2\td3\t2\n"
    with pytest.warns(UserWarning) as caught:
        data = load_beir_folder(_write(tmp_path, qrels=qrels))
    assert len(caught) == 1
    assert "2 judgment(s) repeated with the same grade (first: lines 2 and 4)" in str(caught[0].message)
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}


def test_trec_qrels_follow_the_same_rules(tmp_path):
    from gtr_eval.evaluation import read_qrels_any

    path = tmp_path / "qrels.txt"
    path.write_text("q1 0 d1 1\nq1 0 d2 0\nq1 0 d1 2\n")
    with pytest.raises(DataError, match=r"qrels.txt:3: query 'q1' judges document 'd1' 2, but 1 on line 1"):
        read_qrels_any(path)
    path.write_text("q1 0 d1 1\nq1 0 d1 1\nq2 0 d\x07 1\n")
    with pytest.raises(
        DataError, match=r"qrels.txt:3: document id 'd\\x07' contains a control character U\+0007"
    ):
        read_qrels_any(path)


def test_qrels_ids_read_as_beir_reads_them(tmp_path):
    """BEIR's csv reader strips nothing (a padded id is refused above) and unquotes a quoted field."""
    from beir.datasets.data_loader import GenericDataLoader

    root = _write(tmp_path, qrels=b'query-id\tcorpus-id\tscore\n"q1"\td1\t 1\nq2\t"d3"\t2\n')
    _, _, qrels = GenericDataLoader(str(root)).load(split="test")
    assert load_beir_folder(root).qrels == qrels == {"q1": {"d1": 1}, "q2": {"d3": 2}}


def test_bad_id_refused_fast_at_scifact_size(tmp_path):
    """5,183 documents with one bad id on the last line: refused, naming the line, well under 2 s."""
    lines = [json.dumps({"_id": str(i), "title": "t", "text": "word " * 40}) for i in range(5182)]
    corpus = "\n".join([*lines, json.dumps({"_id": "last one", "text": "x"})]) + "\n"
    root = _write(tmp_path / "data", corpus=corpus.encode())
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"corpus.jsonl:5183: document id 'last one' contains a space"):
        load_beir_folder(root, store_dir=tmp_path / "cache" / "corpus")
    assert time.perf_counter() - start < 2.0
    assert not list((tmp_path / "cache").rglob("*.arrow"))  # nothing stored for a corpus refused


def test_missing_file_is_a_data_error(tmp_path):
    root = _write(tmp_path)
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError, match="queries.jsonl: missing"):
        load_beir_folder(root)
    with pytest.raises(DataError, match=r"qrels/dev.tsv: missing"):
        load_beir_folder(_write(tmp_path), split="dev")


def test_unknown_queries_and_docs_warn_with_counts(tmp_path):
    qrels = QRELS + b"q9\td1\t1\nq8\td2\t1\nq1\td99\t1\n"
    with pytest.warns(
        UserWarning, match="2 judged queries not in queries.jsonl and 1 judgments naming documents"
    ):
        data = load_beir_folder(_write(tmp_path, qrels=qrels))
    assert set(data.qrels) == {"q1", "q2"} and set(data.queries) == {"q1", "q2"}
    assert data.qrels["q1"] == {"d1": 1, "d99": 1}  # kept: relevant but unretrievable, as in BEIR


def test_no_known_judged_query_is_an_error(tmp_path):
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no judged query"):
        load_beir_folder(_write(tmp_path, qrels=b"query-id\tcorpus-id\tscore\nzz\td1\t1\n"))


# ---------------------------------------------------------------------------------------------
# Fuzz: whatever the bytes, the loader loads or raises DataError, never anything else

_FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    '"_id"',
    '"text"',
    "null",
    "\\",
    "\\u",
    "\t",
    "\r",
    "\x00",
    "é",
    "\u2028",
]
# JSON literals, including the ones that trip Python's json module in unusual ways: lone surrogate
# escapes, integers beyond the 4300-digit conversion limit, nesting beyond the recursion limit.
_ESCAPES = [
    "\\ud800",
    "\\udfff",
    "\\ud83d\\ude00",
    "\\ud83d",
    "\\u00e9",
    "\\n",
    "\\t",
    '\\"',
    "\\\\",
    "\\u0000",
]
_string_literals = st.lists(
    st.one_of(st.text(max_size=3).map(lambda t: json.dumps(t)[1:-1]), st.sampled_from(_ESCAPES)), max_size=4
).map(lambda parts: '"' + "".join(parts) + '"')
_other_literals = st.one_of(
    st.integers().map(str),
    st.sampled_from(
        ["null", "true", "0.5", "-0", "1e999", "NaN", "Infinity", "[]", "{}", "9" * 4301, "[" * 100_000]
    ),
)
_literals = st.one_of(_string_literals, _string_literals, _other_literals)
_ids = st.one_of(
    st.sampled_from(['"d4"', '"d5"', '"q3"', '"q4"', "7"]), st.sampled_from(['"d1"', '"q1"', '""']), _literals
)
_templated = st.builds(
    lambda i, t, title: "{" + f'"_id": {i}, "text": {t}' + (f', "title": {title}' if title else "") + "}",
    _ids,
    _literals,
    st.one_of(st.none(), st.none(), _literals),
)
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8))
_json_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["_id", "text", "title", "x"]), inner, max_size=4),
    ),
    max_leaves=8,
)
_json_lines = st.one_of(
    _templated,
    _templated,
    _json_values.map(json.dumps),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=8).map("".join),
)
_tsv_lines = st.lists(
    st.one_of(
        st.sampled_from(["q1", "q2", "d1", "d3", "1", "0", "-1", "x", " 2 ", "1.0", "", "٣"]),
        st.text(max_size=3),
    ),
    max_size=4,
).map("\t".join)


def _mutated(base: bytes, lines: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Base content with some lines replaced or added, random bytes, or the base unchanged."""
    base_lines = base.decode().splitlines()

    @st.composite
    def edit(draw) -> bytes:
        out = list(base_lines)
        for _ in range(draw(st.integers(1, 3))):
            new = draw(lines)
            i = draw(st.integers(0, len(out)))
            if draw(st.booleans()) and i < len(out):
                out[i] = new
            else:
                out.insert(i, new)
        sep = draw(st.sampled_from(["\n", "\r\n"]))
        return sep.join(out).encode("utf-8", "surrogatepass")

    whole = st.lists(lines, max_size=4).map(lambda x: "\n".join(x).encode("utf-8", "surrogatepass"))
    return st.one_of(st.just(base), edit(), edit(), st.binary(max_size=200), whole)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(
    corrupt=st.sets(st.sampled_from(["corpus", "queries", "qrels"]), min_size=1),
    corpus=_mutated(CORPUS, _json_lines),
    queries=_mutated(QUERIES, _json_lines),
    qrels=_mutated(QRELS, _tsv_lines),
)
def test_fuzz_loader_only_raises_data_error(corrupt, corpus, queries, qrels):
    corpus = corpus if "corpus" in corrupt else CORPUS
    queries = queries if "queries" in corrupt else QUERIES
    qrels = qrels if "qrels" in corrupt else QRELS
    with tempfile.TemporaryDirectory() as d:
        root = _write(Path(d), corpus, queries, qrels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                data = load_beir_folder(root)
            except DataError as e:
                event(f"DataError: {e.problem.split(' ')[0]}")
                return
        event("loaded")
        # It loaded: the result must be usable.
        assert len(data.corpus) > 0 and data.queries and set(data.queries) == set(data.qrels)
        for i in range(len(data.corpus)):
            data.corpus.text(i).encode("utf-8")
        for text in data.queries.values():
            text.encode("utf-8")
