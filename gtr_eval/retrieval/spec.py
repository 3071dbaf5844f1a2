"""A system's spec: what makes its rankings what they are, resolved before any data or weights load.

Every family declares one frozen dataclass (`bm25.BM25Spec`, `encoded.DenseSpec` / `SparseSpec` /
`MultiVectorSpec`, `rerank.RerankSpec`, `fusion.FusionSpec`, the imported-run spec).  Its fields are
ranking fields unless declared `setting()` (see `identity`): a result's identity, its manifest and the
cache keys of its vectors are all derived from the one object, so a setting is declared once.

Systems made from stored runs (fusion, re-ranking, two-stage late interaction) name those runs in
`inputs` by their content digest, per dataset: a fused result made from an older input run is not
the fused result of the current one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .. import defaults
from ..identity import record, setting


@dataclass(frozen=True, kw_only=True)
class InputRun:
    """A stored run a system is made from, named by the sha256 of its run file: a different run is a
    different input, whatever made it."""

    system: str
    run_sha256: str
    result: str | None = setting(None)  # the stored result JSON the run belongs to
    model: dict = setting(default_factory=dict)  # what made it (model, revision, weights), for the record


@dataclass(frozen=True, kw_only=True)
class SystemSpec:
    """What every system has: its name (where its results are stored), its family, how many
    documents a query keeps, and the stored runs it is made from."""

    system: str = setting()
    retriever: str = field(default="")
    top_k: int = defaults.TOP_K
    inputs: tuple[InputRun, ...] = ()

    def record(self) -> dict[str, Any]:
        """Every field, settings included: the part of a result's manifest that says what made it."""
        return record(self)

    def with_inputs(self, inputs: tuple[InputRun, ...]) -> SystemSpec:
        return replace(self, inputs=tuple(inputs))


def model_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What made a stored run, from its manifest (for an `InputRun`'s record)."""
    keys = ("retriever", "model", "hub_id", "revision", "weights_sha256", "query_weights_sha256", "preset")
    return {k: manifest[k] for k in keys if manifest.get(k) is not None}
