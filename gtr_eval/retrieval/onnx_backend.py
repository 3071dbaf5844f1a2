"""ONNX Runtime backend: `--backend onnx` (fp32; what `auto` picks on the CPU) and `--backend onnx-int8`.

The whole sentence-transformers stack (transformer + pooling [+ dense + normalize, as in GTR]) is
exported with `torch.onnx` as one graph from token ids to the sentence embedding, so pooling and
projection run inside ONNX Runtime and every sentence-transformers model that traces works, BERT
(MiniLM) and T5 (GTR) alike.  Tokenization stays sentence-transformers' own (`preprocess`), so the
token ids are exactly those the torch backend sees.

Steps, cached under `<cache>/onnx/<weights sha256[:16]>-<recipe>/` (`--cache-dir`, else the user
cache), only as far as the backend needs, in folders built by `artifacts.build_folder` (a file lock
makes concurrent processes export once; a checksum record, verified when a process first opens the
graph, makes a corrupted export be exported again rather than encode wrong vectors):

1. `fp32/model.onnx`: export, eager attention, dynamic batch and sequence axes, opset 17 (removed
   once step 2 has written its file).
2. `fp32/model-opt.onnx`: ONNX Runtime's transformer optimizer (attention, GELU, LayerNorm, embedding
   fusion) for BERT-like models; kept only when it reproduces the export to 1e-4 on a probe batch.
   T5 graphs skip this step (ONNX Runtime's session-level graph optimizations still apply).
3. `int8/model-int8.onnx` (`onnx-int8` only): `quantize_dynamic`, int8 weights **per output channel**,
   MatMuls with a constant weight only (activation x activation products such as attention scores
   stay fp32).  Per-tensor weights cost far more accuracy (worst cosine to fp32 0.90 vs 0.99 on SciFact).

A model that does not export (it does not trace, or its pooling drops the prompt) raises
`OnnxExportError`; the failure is recorded in the folder (`export-failed.json`, with the torch and
onnx versions it happened under), so `auto` goes straight to torch next time without trying again.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np

from ..artifacts import RECORD, CacheRoot, build_folder
from ..errors import ModelError
from .backends import EncoderSpec
from .batching import encode_batches
from .hardware import cpu_batch

log = logging.getLogger(__name__)

RECIPE = "st-stack-v1-opset17-pcq"  # bump when any step below changes the files it writes
FUSABLE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "distilbert": "bert", "mpnet": "bert"}
PROBE = [
    "dense retrieval with a sentence encoder",
    "a longer passage about bread, ovens and yeast, with padding in its batch",
    "x",
]


def recipe_id() -> str:
    """What, besides the backend name, makes ONNX vectors: the recipe and ONNX Runtime's version."""
    import onnxruntime

    return f"{RECIPE}/onnxruntime-{onnxruntime.__version__}"


FAILED = "export-failed.json"


class OnnxExportError(ModelError):
    """The model could not be turned into a working ONNX graph."""


def _require() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise RuntimeError(
            "the onnx backends need `pip install onnx onnxruntime` (or `pip install gtr-eval[onnx]`)"
        ) from e


def _features(st, texts: list[str], prompt: str | None = None) -> dict:
    return st.preprocess(texts, prompt=prompt or None)  # pooling that drops the prompt: see _check_pooling


def export_models(st, folder: Path, int8: bool = False) -> Path:
    """The graph the backend runs, exported once into `folder` (`fp32/model-opt.onnx`, or with `int8`
    also `int8/model-int8.onnx`); each step's folder is built atomically with a checksum record and
    verified when first opened in a process (a corrupted graph is exported again, with a note)."""
    t0 = time.perf_counter()
    target = folder / "fp32" / "model-opt.onnx"
    reused = build_folder(target.parent, lambda tmp: _export_fp32(st, tmp), "ONNX export")
    if int8:
        src, target = target, folder / "int8" / "model-int8.onnx"
        reused &= build_folder(
            target.parent, lambda tmp: _quantize(src, tmp / target.name), "ONNX int8 export"
        )
    if not reused:
        log.info("exported the ONNX model to %s in %.1f s", target, time.perf_counter() - t0)
    return target


def _export_fp32(st, folder: Path) -> None:
    """Steps 1 and 2 into `folder`: the traced graph, then its fused copy (`model-opt.onnx`)."""
    import torch

    raw = folder / "model.onnx"
    feats = {k: v for k, v in _features(st, PROBE[:2]).items() if isinstance(v, torch.Tensor)}
    _export(st, feats, list(feats), raw)
    _optimize(st, raw, folder / "model-opt.onnx", {k: v.numpy() for k, v in feats.items()})
    raw.unlink()


def exported(folder: Path, int8: bool = False) -> bool:
    """Whether the graph the backend runs was exported into `folder` (verified when it is opened)."""
    return (folder / ("int8" if int8 else "fp32") / RECORD).is_file()


def record_failure(folder: Path, error: BaseException) -> None:
    """Remember that this model does not export (under these torch and onnx versions)."""
    from ..io import atomic_write_json

    try:
        atomic_write_json(folder / FAILED, {"error": _describe(error), **_versions()})
    except OSError as e:
        log.warning("could not record the failed ONNX export in %s: %s", folder, e)


def earlier_failure(folder: Path) -> str | None:
    """The error of an earlier export of this model under the same versions, if it failed."""
    try:
        record = json.loads((folder / FAILED).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(record.get(k) != v for k, v in _versions().items()):
        return None  # another torch or onnx may export it: try again
    return str(record.get("error", "unknown error"))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("torch", "onnx"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = ""
    return out


def _describe(error: BaseException) -> str:
    cause = error.__cause__ if isinstance(error, OnnxExportError) and error.__cause__ else error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".rstrip(": ")


def _export(st, feats: dict, names: list[str], out: Path) -> None:
    import torch

    class Stack(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            features = dict(zip(names, tensors, strict=True))
            features["modality"] = "text"
            return self.model(features)["sentence_embedding"]

    auto = getattr(st[0], "auto_model", None)
    previous = getattr(getattr(auto, "config", None), "_attn_implementation", None)
    if auto is not None and hasattr(auto, "set_attn_implementation"):
        auto.set_attn_implementation("eager")  # the pattern ONNX Runtime's attention fusion knows
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Stack(st).eval(),
                tuple(feats[k] for k in names),
                str(tmp),
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={k: {0: "batch", 1: "sequence"} for k in names}
                | {"sentence_embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        if previous is not None and hasattr(auto, "set_attn_implementation"):
            auto.set_attn_implementation(previous)


def _run(path: Path, inputs: dict) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: inputs[i.name] for i in sess.get_inputs()})[0]


def _optimize(st, src: Path, out: Path, probe: dict) -> None:
    import shutil

    config = getattr(getattr(st[0], "auto_model", None), "config", None)
    kind = FUSABLE.get(getattr(config, "model_type", ""))
    tmp = out.with_name(f".{out.name}.tmp")
    if kind is not None:
        from onnxruntime.transformers.optimizer import optimize_model

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opt = optimize_model(
                    str(src),
                    model_type=kind,
                    num_heads=config.num_attention_heads,
                    hidden_size=config.hidden_size,
                )
                opt.save_model_to_file(str(tmp))
            diff = float(np.abs(_run(tmp, probe) - _run(src, probe)).max())
            if diff < 1e-4:
                log.info("ONNX fusion: %s", opt.get_fused_operator_statistics())
                tmp.replace(out)
                return
            log.warning("ONNX fusion changed outputs by %.2g; using the unfused graph", diff)
        except Exception as e:  # the optimizer rejects graphs it does not know; unfused still works
            log.warning("ONNX fusion failed (%s: %s); using the unfused graph", type(e).__name__, e)
        finally:
            tmp.unlink(missing_ok=True)
    shutil.copyfile(src, tmp)
    tmp.replace(out)


def _quantize(src: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out.with_name(f".{out.name}.tmp.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger().disabled, was = True, logging.getLogger().disabled  # its pre-processing hint
            try:
                quantize_dynamic(
                    str(src),
                    str(tmp),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
                )
            finally:
                logging.getLogger().disabled = was
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def model_folder(fingerprint: str, root: Path | str | None = None) -> Path:
    """Where the exports of the model with weights sha256 `fingerprint` live (`root`: `<cache>/onnx`)."""
    return Path(root or CacheRoot.of().area("onnx")) / f"{fingerprint[:16]}-{RECIPE}"


def _check_pooling(st) -> None:
    if any(getattr(m, "include_prompt", True) is False for m in st):
        raise NotImplementedError("the onnx backends do not support pooling that excludes the prompt")


class OnnxEncoder:
    """sentence-transformers tokenization + ONNX Runtime inference, batched longest-first."""

    def __init__(self, spec: EncoderSpec, model=None):
        """`model`: one already in memory, on the CPU in fp32 (a model being trained), exported as it
        is now; `spec.fingerprint` then names its weights."""
        _require()
        import onnxruntime as ort
        import torch

        from .loaders import load_sentence_transformer
        from .weights import weights_fingerprint

        self.spec = spec
        # Loaded on CPU in fp32: the export's source, then only its tokenizer (`preprocess`) is used.
        self.model = (
            model
            if model is not None
            else load_sentence_transformer(
                Path(spec.path),
                device="cpu",
                max_length=spec.max_length,
                trust_remote_code=spec.trust_remote_code,
            )
        )
        self.tokenizing = self.model  # or a memo of its `preprocess` (see `encoders.TorchEncoder`)
        self.max_seq_length = self.model.max_seq_length
        fingerprint = spec.fingerprint or weights_fingerprint(Path(spec.path))
        t0 = time.perf_counter()
        try:
            _check_pooling(self.model)
            self.path = export_models(
                self.model, model_folder(fingerprint, spec.export_dir), int8=spec.backend == "onnx-int8"
            )
            self.export_s = time.perf_counter() - t0  # ~0 when the export was cached
            options = ort.SessionOptions()
            options.intra_op_num_threads = spec.threads or torch.get_num_threads()
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # tracing and ONNX Runtime raise many types; all mean "no ONNX here"
            raise OnnxExportError(f"{Path(spec.path).name} does not run as ONNX ({_describe(e)})") from e
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: list[str], prompt: str = "", task: str | None = None) -> np.ndarray:
        # `task` routes only Router models, which the ONNX export does not take (DenseRetriever refuses).
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        bs = cpu_batch(self.spec.batch_size)  # small batches run fastest (see encoders)
        # prompt: as `_features` passes it (pooling that drops the prompt: see _check_pooling)
        return encode_batches(self.tokenizing, texts, prompt or None, bs, self._run)

    def _run(self, feats: dict) -> np.ndarray:
        return self.session.run(None, {k: feats[k].numpy() for k in self.inputs})[0]
