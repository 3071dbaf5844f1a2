"""PeerQA evidence retrieval, scored the way its authors score it: each question searches its own paper.

PeerQA (Baumgärtner, Briscoe and Gurevych, NAACL 2025; github.com/UKPLab/PeerQA) asks reviewers'
questions about one paper each; the evidence is paragraphs (or sentences) of that paper.  Its
published retrieval figures rank, for every question, only the paragraphs of the question's own
paper, a setting BEIR's one-corpus search does not cover.  This module rebuilds that setting from
the released files and runs it through gtr-eval's normal `Retriever` interface.

What is matched, file by file, in the UKPLab/PeerQA repository:

- `retrieval_create_qrels.py`: a question with `answer_evidence_mapped` null is skipped; every
  non-null `idx` of every evidence entry is looked up among the rows of the question's paper in
  `papers.jsonl` (an `idx` not found is an error there too); relevance is binary (grade 1, several
  evidence sentences in one paragraph still give that paragraph grade 1); paragraph documents are
  `pidx`, sentence documents `pidx/sidx`.  A question whose evidence all maps to null gets no
  judgments and is not evaluated.  `answerable_mapped` plays no part in the qrels.
- `peerqa/data_loader.py` (`PaperLoader`): a paper's rows are taken in `idx` order; a paragraph is
  the `" ".join` of the `content` of its rows grouped by `pidx` (every row type: title, heading,
  sentence, list item, formula, caption); a sentence document is one row.  Without `--template` (the
  default of the retrieval scripts) the document text is the content alone: no title, no
  `last_heading`.  With a template, `{title}` is the paper's one `type == "title"` row and
  `{abstract}` the `" ".join` of the rows whose `last_heading` is "abstract" (case-insensitive).
- `retrieval_dense_cross_retrieval.py` and `retrieval_pyserini_*.py`: per paper, index that paper's
  documents and search only that paper's questions; papers without an evaluated question are skipped.
- `retrieval_evaluate.py`: pytrec_eval `RelevanceEvaluator(qrels, ...)` with the default relevance
  level 1, mean over questions; its `recip_rank` is uncut.  gtr-eval's `mrr` and `recall@10` are the
  same measures.  It drops no document whose id equals the question id, so neither do we
  (`ignore_identical_ids=False`; our document ids cannot equal a question id anyway).

Our document ids prefix the paper: `paper_id/pidx` and `paper_id/pidx/sidx`.  They are unique
across papers (checked), so one run file holds every question and a cross-paper hit is impossible.
The document text is stored as the body with an empty title, so gtr-eval's `(title + " " + text)
.strip()` is the authors' text up to outer whitespace.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .jsonl import DataError, json_problem, numbered_lines
from .loader import BeirData, Corpus

GRANULARITIES = {"peerqa": "paragraphs", "peerqa-sentences": "sentences"}
PAPERS_FILE = "papers.jsonl"
QA_FILE = "qa.jsonl"
QUESTIONS_URL = (
    "https://tudatalib.ulb.tu-darmstadt.de/bitstream/handle/tudatalib/4467/peerqa-data-v1.0.zip"
    "?sequence=1&isAllowed=y"
)
HOW_TO_OBTAIN = (
    f"PeerQA is not downloadable as one file. Put its questions (qa.jsonl, from the authors' archive "
    f"{QUESTIONS_URL}) and the paper texts (papers.jsonl, which you extract yourself with the authors' "
    "download_openreview.py, download_egu.py and extract_text_from_pdf.py from "
    "https://github.com/UKPLab/PeerQA, as the papers' licences require) into DATA_DIR/peerqa/."
)


@dataclass(frozen=True)
class Groups:
    """Retrieval scopes: each scope's corpus rows and the query ids that search only those rows."""

    docs: dict[str, list[int]]
    queries: dict[str, list[str]]


@dataclass
class PeerQAData(BeirData):
    """A `BeirData` whose queries each search one paper; the runner checks `groups`."""

    groups: Groups | None = None
    granularity: str = "paragraphs"
    template: str | None = None


# --------------------------------------------------------------------------------------- reading


def _record(path: Path, lineno: int, line: str, fields: dict[str, Callable[[Any], bool]]) -> dict:
    try:
        rec = json.loads(line)
    except (RecursionError, ValueError) as e:
        raise DataError(path, lineno, json_problem(e)) from None
    if not isinstance(rec, dict):
        raise DataError(path, lineno, "expected a JSON object")
    for key, ok in fields.items():
        if key not in rec:
            raise DataError(path, lineno, f"missing field {key!r}")
        if not ok(rec[key]):
            raise DataError(path, lineno, f"field {key!r} has a bad value {rec[key]!r:.80}")
    return rec


def _is_int(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())


def _is_id(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _is_evidence(v: Any) -> bool:
    return v is None or (
        isinstance(v, list)
        and all(
            isinstance(ae, dict)
            and isinstance(ae.get("idx"), list)
            and all(i is None or _is_int(i) for i in ae["idx"])
            for ae in v
        )
    )


_PAPER_FIELDS = {
    "paper_id": _is_id,
    "idx": _is_int,
    "pidx": _is_int,
    "sidx": _is_int,
    "content": lambda v: isinstance(v, str),
}
_QA_FIELDS = {
    "question_id": _is_id,
    "paper_id": _is_id,
    "question": lambda v: isinstance(v, str),
    "answer_evidence_mapped": _is_evidence,
}


@dataclass
class _Row:
    idx: int
    pidx: int
    sidx: int
    type: str
    content: str
    last_heading: str


def read_papers(path: Path) -> tuple[dict[str, list[_Row]], str]:
    """paper_id -> rows in `idx` order; plus the file's sha256."""
    path = Path(path)
    hasher = hashlib.sha256()
    papers: dict[str, dict[int, _Row]] = defaultdict(dict)
    first: dict[tuple[str, int], int] = {}
    for lineno, line in numbered_lines(path, hasher):
        if not line.strip():
            continue
        r = _record(path, lineno, line, _PAPER_FIELDS)
        pid, idx = r["paper_id"], int(r["idx"])
        if (pid, idx) in first:
            raise DataError(
                path, lineno, f"duplicate idx {idx} of paper {pid!r} (first on line {first[pid, idx]})"
            )
        first[pid, idx] = lineno
        papers[pid][idx] = _Row(
            idx,
            int(r["pidx"]),
            int(r["sidx"]),
            str(r.get("type") or ""),
            r["content"],
            str(r.get("last_heading") or ""),
        )
    if not papers:
        raise DataError(path, None, "no paper rows")
    return {pid: [rows[i] for i in sorted(rows)] for pid, rows in papers.items()}, hasher.hexdigest()


@dataclass
class _Question:
    text: str
    paper_id: str
    paragraphs: dict[str, int] = field(default_factory=dict)
    sentences: dict[str, int] = field(default_factory=dict)


def read_questions(path: Path, papers: dict[str, list[_Row]]) -> tuple[dict[str, _Question], str]:
    """Questions with at least one mapped evidence row, with their qrels (retrieval_create_qrels.py)."""
    path = Path(path)
    hasher = hashlib.sha256()
    by_idx = {pid: {row.idx: row for row in rows} for pid, rows in papers.items()}
    out: dict[str, _Question] = {}
    first: dict[str, int] = {}
    for lineno, line in numbered_lines(path, hasher):
        if not line.strip():
            continue
        r = _record(path, lineno, line, _QA_FIELDS)
        qid, pid = r["question_id"], r["paper_id"]
        if qid in first:
            raise DataError(path, lineno, f"duplicate question_id {qid!r} (first on line {first[qid]})")
        first[qid] = lineno
        q = _Question(r["question"], pid)
        for ae in r["answer_evidence_mapped"] or ():  # null: no evidence annotated
            for idx in ae["idx"]:
                if idx is None:  # evidence with no match in the extracted text
                    continue
                if pid not in by_idx:
                    raise DataError(
                        path,
                        lineno,
                        f"paper {pid!r} of question {qid!r} is not in {PAPERS_FILE}; {HOW_TO_OBTAIN}",
                    )
                row = by_idx[pid].get(int(idx))
                if row is None:
                    raise DataError(path, lineno, f"evidence idx {int(idx)} is not a row of paper {pid!r}")
                q.paragraphs[f"{pid}/{row.pidx}"] = 1
                q.sentences[f"{pid}/{row.pidx}/{row.sidx}"] = 1
        if q.paragraphs:
            out[qid] = q
    if not out:
        raise DataError(path, None, "no question has mapped answer evidence: nothing to evaluate")
    return out, hasher.hexdigest()


def _documents(
    pid: str, rows: list[_Row], granularity: str, template: str | None, path: Path
) -> list[tuple[str, str]]:
    """(doc id, text) of one paper, as PaperLoader builds them."""
    if granularity == "sentences":
        docs = [(f"{pid}/{r.pidx}/{r.sidx}", r.content) for r in rows]
    else:
        paragraphs: dict[int, list[str]] = defaultdict(list)
        for r in rows:
            paragraphs[r.pidx].append(r.content)
        docs = [(f"{pid}/{p}", " ".join(paragraphs[p])) for p in sorted(paragraphs)]
    if template is None:
        return docs
    values = {"title": None, "abstract": None}
    if "{title}" in template:
        titles = [r.content for r in rows if r.type == "title"]
        if len(titles) != 1:
            raise DataError(path, None, f"paper {pid!r} has {len(titles)} rows of type 'title', expected 1")
        values["title"] = titles[0]
    if "{abstract}" in template:
        abstract = [r.content for r in rows if r.last_heading.lower() == "abstract"]
        if not abstract:
            raise DataError(path, None, f"paper {pid!r} has no row whose last_heading is 'abstract'")
        values["abstract"] = " ".join(abstract)
    return [(d, template.format(content=text, **values)) for d, text in docs]


def load_peerqa(
    folder: Path, granularity: str = "paragraphs", template: str | None = None, name: str | None = None
) -> PeerQAData:
    """Read `folder/papers.jsonl` and `folder/qa.jsonl` into per-paper retrieval data.

    `granularity` is "paragraphs" or "sentences"; `template` is the authors' `--template` (e.g.
    "Title: {title} Paragraph: {content}", their decontextualisation), None for the plain content.
    The corpus holds the papers that have an evaluated question; `groups` maps each such paper to
    its corpus rows and its questions.
    """
    if granularity not in ("paragraphs", "sentences"):
        raise ValueError(f"granularity must be 'paragraphs' or 'sentences', not {granularity!r}")
    if template is not None and "{content}" not in template:
        raise ValueError("a PeerQA template must contain {content}")
    folder = Path(folder)
    check_files(folder)
    papers, papers_sha = read_papers(folder / PAPERS_FILE)
    questions, qa_sha = read_questions(folder / QA_FILE, papers)
    by_paper: dict[str, list[str]] = defaultdict(list)
    for qid, q in questions.items():
        by_paper[q.paper_id].append(qid)
    ids: list[str] = []
    records: list[tuple[str, str, str]] = []
    docs: dict[str, list[int]] = {}
    seen: set[str] = set()
    for pid in sorted(by_paper):
        start = len(records)
        for doc_id, text in _documents(pid, papers[pid], granularity, template, folder / PAPERS_FILE):
            if doc_id in seen:
                raise DataError(folder / PAPERS_FILE, None, f"document id {doc_id!r} occurs twice")
            seen.add(doc_id)
            ids.append(doc_id)
            records.append((doc_id, "", text))
        docs[pid] = list(range(start, len(records)))
    key = "paragraphs" if granularity == "paragraphs" else "sentences"
    return PeerQAData(
        name=name or f"peerqa{'' if granularity == 'paragraphs' else '-sentences'}",
        path=folder,
        split="test",
        corpus=Corpus.from_records(records),
        queries={qid: q.text for qid, q in questions.items()},
        qrels={qid: dict(getattr(q, key)) for qid, q in questions.items()},
        checksums={PAPERS_FILE: papers_sha, QA_FILE: qa_sha},
        groups=Groups(docs=docs, queries=dict(by_paper)),
        granularity=granularity,
        template=template,
    )


def check_files(folder: Path) -> None:
    missing = [f for f in (PAPERS_FILE, QA_FILE) if not (Path(folder) / f).is_file()]
    if missing:
        raise DataError(folder, None, f"PeerQA: {', '.join(missing)} not found. {HOW_TO_OBTAIN}")
