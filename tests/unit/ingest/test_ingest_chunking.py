"""Chunking for the embedding model: budgets, sentences, headings, overlap, and real corpora."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import pytest

from tenantrag.errors import ValidationFailed
from tenantrag.ingest import ChunkPiece, chunk_text, embedding_text
from tenantrag.ingest.chunking import (
    MAX_CHUNK_CHARS,
    first_line_title,
    parse_heading,
    split_sentences,
)

Counter = Callable[[str], int]
MODEL_LIMIT = 256  # MiniLM reads at most this many word pieces, [CLS] and [SEP] included


def sentences(count: int, *, start: int = 0) -> str:
    """`count` distinct sentences of about a dozen word pieces each."""
    return " ".join(
        f"Sentence {i} says that fact {i} matters a great deal."
        for i in range(start, start + count)
    )


def assert_within_model_limit(
    pieces: list[ChunkPiece], title: str, count_tokens: Counter, limit: int = MODEL_LIMIT
) -> None:
    for piece in pieces:
        assert count_tokens(embedding_text(piece, title)) + 2 <= limit, piece


class TestSmallInput:
    @pytest.mark.parametrize("text", ["", "   \n\t\n  "])
    def test_blank_text_has_no_chunks(self, text: str, count_tokens: Counter) -> None:
        """Empty or whitespace-only text yields no chunks; the caller reports the error."""
        assert chunk_text(text, title="T", count_tokens=count_tokens) == []

    def test_small_document_is_exactly_one_chunk(self, count_tokens: Counter) -> None:
        """A document that fits the budget whole is one chunk, headings kept inline."""
        text = "# Leave\n\nTake leave early.\n\n## Sick leave\n\nStay home when sick.\nRest."
        pieces = chunk_text(text, title="Handbook", count_tokens=count_tokens)
        assert pieces == [
            ChunkPiece(
                0, "# Leave\nTake leave early.\n## Sick leave\nStay home when sick. Rest.", None
            )
        ]

    def test_embedding_text_is_title_heading_and_text_on_lines(self) -> None:
        """The embedded text is the title, the heading path and the chunk text, one a line."""
        assert embedding_text(ChunkPiece(0, "Body.", "A > B"), "Doc") == "Doc\nA > B\nBody."
        assert embedding_text(ChunkPiece(0, "Body.", None), "Doc") == "Doc\nBody."
        assert embedding_text(ChunkPiece(0, "Body.", None), "") == "Body."


class TestBudget:
    @pytest.mark.parametrize("max_tokens", [64, 128, 256])
    def test_no_chunk_exceeds_the_model_limit_with_its_title(
        self, max_tokens: int, count_tokens: Counter
    ) -> None:
        """Every chunk's embedding text, title and heading included, fits in max_tokens."""
        title = "A fairly long title about the regulation of cellular metabolism in mice"
        text = "# Results\n\n" + sentences(80) + "\n\n## Discussion of findings\n\n" + sentences(60)
        pieces = chunk_text(text, title=title, count_tokens=count_tokens, max_tokens=max_tokens)
        assert len(pieces) > 2
        assert_within_model_limit(pieces, title, count_tokens, max_tokens)

    def test_positions_count_up_in_document_order(self, count_tokens: Counter) -> None:
        """Positions are 0..n-1 and chunks follow the document's order."""
        pieces = chunk_text(sentences(100), title="T", count_tokens=count_tokens, max_tokens=64)
        assert [p.position for p in pieces] == list(range(len(pieces)))
        firsts = [int(p.text.split()[1]) for p in pieces]
        assert firsts == sorted(firsts)
        assert firsts[0] == 0 and pieces[-1].text.endswith("fact 99 matters a great deal.")

    def test_every_sentence_is_kept(self, count_tokens: Counter) -> None:
        """Every sentence of the input appears in some chunk."""
        text = sentences(100)
        pieces = chunk_text(text, title="T", count_tokens=count_tokens, max_tokens=64)
        kept = {s for p in pieces for s in split_sentences(p.text)}
        assert kept == set(split_sentences(text))

    def test_sentence_longer_than_the_budget_is_split_between_words(
        self, count_tokens: Counter
    ) -> None:
        """A sentence over the budget is cut between words, each piece in budget, words in order."""
        words = [f"word{i}" for i in range(3000)]
        pieces = chunk_text(" ".join(words), title="T", count_tokens=count_tokens)
        assert len(pieces) > 10
        assert_within_model_limit(pieces, "T", count_tokens)
        rejoined = [w for p in pieces for w in p.text.split()]
        assert sorted(set(rejoined), key=rejoined.index) == words

    def test_a_giant_word_is_cut_to_bounded_chunks(self, count_tokens: Counter) -> None:
        """A 50,000-character word (one [UNK] to WordPiece) is cut into bounded chunks."""
        word = "x" * 50_000
        pieces = chunk_text(word, title="T", count_tokens=count_tokens)
        assert "".join(p.text for p in pieces) == word
        assert all(len(p.text) <= MAX_CHUNK_CHARS for p in pieces)
        assert_within_model_limit(pieces, "T", count_tokens)

    def test_title_that_leaves_no_room_is_422(self, count_tokens: Counter) -> None:
        """A title that takes over half the budget is refused with a clear message."""
        with pytest.raises(ValidationFailed, match="title is too long"):
            chunk_text("Body.", title="x " * 200, count_tokens=count_tokens)

    def test_long_heading_path_is_shortened_to_leave_room(self, count_tokens: Counter) -> None:
        """A heading path that crowds out the text is cut back to its last heading."""
        long_parent = "-".join(["x"] * 60)  # 119 word pieces
        text = f"# {long_parent}\n\n## Child\n\n" + sentences(60)
        pieces = chunk_text(text, title="T " * 100, count_tokens=count_tokens)
        assert {p.heading for p in pieces} == {"Child"}
        assert_within_model_limit(pieces, "T " * 100, count_tokens)

    def test_tokens_are_counted_once_per_sentence(self) -> None:
        """The counter is called about once per sentence, not once per packing attempt."""
        calls = 0

        def counting(text: str) -> int:
            nonlocal calls
            calls += 1
            return len(text.split())

        chunk_text(sentences(2000), title="T", count_tokens=counting, max_tokens=64)
        assert calls <= 2000 + 5


class TestStructure:
    def test_chunks_never_cross_a_heading(self, count_tokens: Counter) -> None:
        """Each chunk holds sentences of one section and carries that section's heading path."""
        text = (
            f"# Guide\n\n{sentences(30)}\n\n## Setup\n\n{sentences(30, start=100)}\n\n"
            f"### Linux\n\n{sentences(30, start=200)}\n\n## Usage\n\n{sentences(30, start=300)}"
        )
        pieces = chunk_text(text, title="Manual", count_tokens=count_tokens, max_tokens=96)
        by_heading = {
            "Guide": 0,
            "Guide > Setup": 100,
            "Guide > Setup > Linux": 200,
            "Guide > Usage": 300,
        }
        for piece in pieces:
            numbers = {int(s.split()[1]) // 100 * 100 for s in split_sentences(piece.text)}
            assert numbers == {by_heading[piece.heading or ""]}
        assert [p.heading for p in pieces] == sorted(
            (p.heading or "" for p in pieces), key=list(by_heading).index
        )

    def test_top_heading_equal_to_the_title_is_not_repeated(self, count_tokens: Counter) -> None:
        """A first heading that repeats the title is left out of the heading path."""
        text = f"# Manual\n\n{sentences(40)}\n\n## Setup\n\n{sentences(40, start=100)}"
        pieces = chunk_text(text, title="Manual", count_tokens=count_tokens)
        assert {p.heading for p in pieces} == {None, "Setup"}

    def test_hash_lines_in_code_fences_are_not_headings(self, count_tokens: Counter) -> None:
        """A '# comment' inside a fenced code block stays text and starts no section."""
        text = f"## Install\n\n```bash\n# update first\napt-get update\n```\n\n{sentences(40)}"
        pieces = chunk_text(text, title="T", count_tokens=count_tokens)
        assert {p.heading for p in pieces} == {"Install"}
        assert pieces[0].text.startswith("```bash\n# update first\napt-get update\n```")

    def test_consecutive_chunks_of_a_section_overlap_by_about_the_overlap(
        self, count_tokens: Counter
    ) -> None:
        """The next chunk of a section starts with the last sentences of the previous one."""
        pieces = chunk_text(sentences(60), title="T", count_tokens=count_tokens, overlap_tokens=32)
        assert len(pieces) >= 3
        for before, after in zip(pieces, pieces[1:], strict=False):
            shared = [s for s in split_sentences(after.text) if s in split_sentences(before.text)]
            assert shared and split_sentences(before.text)[-len(shared) :] == shared
            assert 16 <= count_tokens(" ".join(shared)) <= 64

    def test_no_overlap_when_asked_for_none(self, count_tokens: Counter) -> None:
        """With overlap_tokens=0 no sentence appears in two chunks."""
        pieces = chunk_text(sentences(60), title="T", count_tokens=count_tokens, overlap_tokens=0)
        all_sentences = [s for p in pieces for s in split_sentences(p.text)]
        assert len(all_sentences) == len(set(all_sentences)) == 60

    def test_chunking_is_deterministic(self, count_tokens: Counter) -> None:
        """The same input always gives the same chunks."""
        text = f"# A\n\n{sentences(50)}\n\n## B\n\n- item one\n- item two\n\n{sentences(20)}"
        first = chunk_text(text, title="T", count_tokens=count_tokens, max_tokens=80)
        assert chunk_text(text, title="T", count_tokens=count_tokens, max_tokens=80) == first


class TestSentences:
    def test_abbreviations_initials_and_decimals_do_not_end_sentences(self) -> None:
        """'Dr.', 'e.g.', 'et al.', 'U.S.', 'Fig. 3', 'No. 5' and '3.5' do not end a sentence."""
        text = (
            "Dr. Smith et al. found e.g. 3.5 mg in U.S. Army samples. The answer is no. "
            "See Fig. 3 for details! Is it real? Yes (see No. 5). Prices rose approx. five "
            "percent, etc. and more. It ended... Then it began."
        )
        assert split_sentences(text) == [
            "Dr. Smith et al. found e.g. 3.5 mg in U.S. Army samples.",
            "The answer is no.",
            "See Fig. 3 for details!",
            "Is it real?",
            "Yes (see No. 5).",
            "Prices rose approx. five percent, etc. and more.",
            "It ended...",
            "Then it began.",
        ]

    def test_closing_quotes_and_brackets_stay_with_their_sentence(self) -> None:
        """Quotes and brackets after the full stop belong to the sentence they close."""
        assert split_sentences('He said "stop." Then (it did.) Fine.') == [
            'He said "stop."',
            "Then (it did.)",
            "Fine.",
        ]

    def test_abbreviations_survive_packing_under_a_tight_budget(
        self, count_tokens: Counter
    ) -> None:
        """Under a tight budget, chunk boundaries never fall right after 'e.g.' or 'Dr.'."""
        text = " ".join(f"Dr. Lee {i} used e.g. method {i} in the U.S. today." for i in range(40))
        pieces = chunk_text(text, title="T", count_tokens=count_tokens, max_tokens=48)
        for piece in pieces:
            assert piece.text.startswith("Dr. Lee") and piece.text.endswith("today.")


class TestRealCorpora:
    def test_scifact_abstracts_fit_the_model(
        self, scifact_sample: Path, count_tokens: Counter
    ) -> None:
        """The first 300 SciFact abstracts chunk within the model limit, long ones with overlap."""
        with scifact_sample.open() as corpus:
            docs = [json.loads(line) for line in islice(corpus, 300)]
        multi = 0
        for doc in docs:
            pieces = chunk_text(doc["text"], title=doc["title"], count_tokens=count_tokens)
            assert pieces, doc["_id"]
            assert_within_model_limit(pieces, doc["title"], count_tokens)
            multi += len(pieces) > 1
        assert 100 < multi < 300

    def test_handbook_pages_fit_the_model(
        self, handbook_corpus: Path, count_tokens: Counter
    ) -> None:
        """Every 18F handbook page chunks within the model limit with its headings as paths."""
        with handbook_corpus.open() as corpus:
            docs = [json.loads(line) for line in islice(corpus, 60)]
        headings = set()
        for doc in docs:
            pieces = chunk_text(doc["text"], title=doc["title"], count_tokens=count_tokens)
            assert_within_model_limit(pieces, doc["title"], count_tokens)
            headings.update(p.heading for p in pieces)
        assert len(headings) > 50


class TestHostileText:
    @pytest.mark.parametrize(
        "text",
        [
            "# a" + " " * 100_000 + "b\n\nBody.",
            "." * 100_000 + "x",
            "x.\t" * 100_000,
            "Word " * 100_000,
        ],
        ids=["spaces-in-heading", "run-of-dots", "tab-separated-stops", "no-stops"],
    )
    def test_runs_that_make_regexes_backtrack_chunk_in_linear_time(self, text: str) -> None:
        """Long runs of spaces, dots or stops chunk within budget (these once took minutes)."""
        pieces = chunk_text(text, title="T", count_tokens=lambda s: len(s.split()), max_tokens=64)
        assert pieces and all(len(p.text.split()) + 1 <= 62 for p in pieces)

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("## Name ##", (2, "Name")),
            ("  ### Spaced   ", (3, "Spaced")),
            ("# C#", (1, "C#")),
            ("####### seven", None),
            ("#hashtag", None),
            ("# #", None),
        ],
    )
    def test_heading_lines_parse_like_markdown(
        self, line: str, expected: tuple[int, str] | None
    ) -> None:
        """ATX headings need one to six '#' and a space; a closing '#' run is dropped."""
        assert parse_heading(line) == expected


@pytest.mark.parametrize(
    ("text", "title"),
    [
        # A paper: its title line, an address, then the body (COVID-QA's contexts).
        (
            "Functional Genetic Variants in DC-SIGNR\n\nhttps://www.ncbi.nlm.nih.gov/pmc/x/\n\nBody.",
            "Functional Genetic Variants in DC-SIGNR",
        ),
        ("# Leave policy\n\nStaff request leave in the portal.", "Leave policy"),
        ("\n\n  Is it safe? A review  \nBody text follows.", "Is it safe? A review"),
        ("This policy covers annual leave.\nMore text.", ""),  # a sentence, not a title
        (
            "Toltrazuril resistance in ovine Eimeria spp.\nBody.",
            "Toltrazuril resistance in ovine Eimeria spp.",
        ),
        ("Measles outbreaks in the U.S.\nBody.", "Measles outbreaks in the U.S."),
        ("## Leave policy ##\nBody.", "Leave policy"),  # a closing sequence is no part of it
        ("Abstract:\nBody.", ""),  # a label
        ("https://example.com/page\nBody.", ""),
        ("2020-03-01 12:00\nBody.", ""),  # no letter: a date or a number, not a title
        ("A document of one line only", ""),  # the title would repeat the whole text
        ("word " * 31 + "\nBody.", ""),
        ("x" * 201 + "\nBody.", ""),
        ("", ""),
    ],
)
def test_a_document_without_a_title_takes_its_first_line_when_it_reads_as_one(
    text: str, title: str, count_tokens: Counter
) -> None:
    assert first_line_title(text, count_tokens) == title


def test_a_first_line_of_too_many_word_pieces_is_no_title(count_tokens: Counter) -> None:
    """Every chunk carries the title: one of more than a quarter of the budget is none."""
    line = " ".join(["CCR5\u039432"] * 25)  # 25 words, 199 characters, 125 word pieces
    assert count_tokens(line) > 64 and len(line) <= 200
    assert first_line_title(f"{line}\nBody.", count_tokens) == ""
