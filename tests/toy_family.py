"""A retriever family in one file: it ranks documents by the number of distinct query words they
contain.  Its "model" is a folder holding `word-overlap.json` (`{"min_length": 3}`: shorter words
are ignored), which the family recognises and reads into its own spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from gtr_eval.identity import setting
from gtr_eval.retrieval.base import Report, Retriever, Searched
from gtr_eval.retrieval.families import Cost, FamilyBase
from gtr_eval.retrieval.models import system_name
from gtr_eval.retrieval.spec import SystemSpec

MARKER = "word-overlap.json"
WORD = re.compile(r"\w+")


@dataclass(frozen=True, kw_only=True)
class OverlapSpec(SystemSpec):
    """What makes its rankings: the shortest word counted.  The folder is where the setting came
    from (a setting: moving the folder changes no ranking)."""

    retriever: str = "word-overlap"
    min_length: int = 1
    folder: str = setting("")


class OverlapRetriever(Retriever):
    def __init__(self, spec: OverlapSpec):
        self.spec = spec
        self._docs: list[tuple[str, set[str]]] = []

    def _words(self, text: str) -> set[str]:
        return {w for w in WORD.findall(text.lower()) if len(w) >= self.spec.min_length}

    def index(self, corpus) -> Report:
        self._docs = [(corpus.ids[i], self._words(corpus.text(i))) for i in range(len(corpus))]
        return Report(stats={"documents": len(self._docs)})

    def search(self, queries: dict[str, str], top_k: int, candidates=None) -> Searched:
        run = {}
        for qid, text in queries.items():
            words = self._words(text)
            scores = {doc: float(len(words & have)) for doc, have in self._docs if words & have}
            best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
            run[qid] = dict(best)
        return Searched(run)


class OverlapFamily(FamilyBase):
    name = "word-overlap"
    spec_type = OverlapSpec

    def detects(self, folder: Path) -> bool:
        return (Path(folder) / MARKER).is_file()

    def resolve(self, request, opts, top_k: int) -> OverlapSpec:
        folder = Path(str(request)).expanduser().resolve()
        settings = json.loads((folder / MARKER).read_text())
        return OverlapSpec(
            system=system_name(str(request)), min_length=int(settings.get("min_length", 1)),
            folder=str(folder), top_k=top_k,
        )  # fmt: skip

    def build(self, spec: SystemSpec, cache_dir: Path | None) -> Retriever:
        return OverlapRetriever(spec)

    def cost(self, spec: SystemSpec) -> Cost:
        return Cost(seconds=lambda docs, doc_words, queries: 1e-7 * queries * docs * doc_words)
