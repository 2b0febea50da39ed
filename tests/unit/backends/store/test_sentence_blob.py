"""How a chunk's sentence vectors are stored (rows.sentence_blob): int8 rows, directions kept."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tenantrag.backends.store.rows import sentence_blob, sentence_vectors_from

ROWS = arrays(
    np.float32,
    st.tuples(st.integers(1, 12), st.integers(1, 64)),
    elements=st.floats(-10, 10, width=32, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(rows=ROWS)
def test_each_row_comes_back_as_its_direction(rows: np.ndarray) -> None:
    """Unit rows whose cosine with what was written is at least 0.995 (a zero row stays 0)."""
    back = sentence_vectors_from(sentence_blob(rows))
    assert back.shape == rows.shape and back.dtype == np.float32
    for written, read in zip(rows, back, strict=True):
        norm = float(np.linalg.norm(written.astype(np.float64)))
        if norm == 0.0:
            assert not read.any()
            continue
        assert float(np.linalg.norm(read)) == pytest.approx(1.0, abs=1e-5)
        assert float(read @ written.astype(np.float64)) / norm >= 0.995


def test_the_blob_is_a_quarter_of_float32() -> None:
    """384 dimensions: 384 bytes a sentence, plus a 4-byte header per chunk."""
    rows = np.random.default_rng(0).standard_normal((10, 384)).astype(np.float32)
    assert len(sentence_blob(rows)) == 4 + 10 * 384


@pytest.mark.parametrize("shape", [(384,), (0, 70000), (2, 3, 4)])
def test_what_is_not_a_matrix_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="matrix"):
        sentence_blob(np.zeros(shape, dtype=np.float32))
