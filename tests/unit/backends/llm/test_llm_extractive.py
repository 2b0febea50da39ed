"""ExtractiveLLM: quoted, cited answers from the context, and a plain 'no answer' otherwise."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from tests.unit.backends.llm.llm_fakes import LEAVE_BLOCKS, make_prompt

from tenantrag.backends.llm import ContextBlock, Delta, Done, collect
from tenantrag.backends.llm.extractive import ExtractiveLLM, paragraphs, stem, terms
from tenantrag.backends.llm.prompt import NO_ANSWER
from tenantrag.backends.llm.tokens import TokenCounter

CITATION = re.compile(r"\[(\d+)\]")


def handbook_blocks(pages: dict[str, dict[str, str]], *titles: str) -> tuple[ContextBlock, ...]:
    """Real handbook pages (their first 1,500 characters) as numbered blocks."""
    return tuple(
        ContextBlock(i, f"{pages[t]['_id']}#0", pages[t]["_id"], t, pages[t]["text"][:1500], 1.0)
        for i, t in enumerate(titles, start=1)
    )


async def answer(question: str, blocks: tuple[ContextBlock, ...] = LEAVE_BLOCKS) -> str:
    return (await ExtractiveLLM().complete(make_prompt(question, blocks), tenant="acme")).text


class TestAnswers:
    async def test_quotes_the_matching_sentence_with_its_citation(self) -> None:
        """The sentence stating the fact is quoted, citing its block as [1]."""
        text = await answer("How many days of annual leave do full-time employees earn?")
        assert text.startswith("Full-time employees earn 13 days of annual leave each year [1].")

    async def test_every_sentence_cites_a_provided_block(
        self, handbook: dict[str, dict[str, str]]
    ) -> None:
        """Each sentence of a real multi-page answer ends with a citation of a given block."""
        blocks = handbook_blocks(handbook, "Benefits", "Leave types", "Tock")
        text = await answer("When does open season for benefits run?", blocks)
        sentences = re.split(r"(?<=\.)\s+", text)
        assert sentences and all(CITATION.search(s) for s in sentences)
        assert {int(n) for n in CITATION.findall(text)} <= {b.index for b in blocks}
        assert "Open Season" in text

    async def test_says_plainly_when_the_context_does_not_answer(self) -> None:
        """An unrelated question gets the no-answer sentence and no citation."""
        text = await answer("What is the capital of Mongolia?")
        assert text == NO_ANSWER
        assert not CITATION.search(text)

    async def test_one_shared_word_is_not_an_answer(
        self, handbook: dict[str, dict[str, str]]
    ) -> None:
        """'capital' alone, in real pages about Washington, does not answer about Mongolia."""
        blocks = handbook_blocks(handbook, "Washington, D.C.", "Requirements for Passwords")
        assert await answer("What is the capital of Mongolia?", blocks) == NO_ANSWER

    async def test_no_blocks_means_no_answer(self) -> None:
        """With nothing retrieved it says the documents do not answer."""
        assert await answer("How much annual leave do employees earn?", ()) == NO_ANSWER

    async def test_answers_are_deterministic(self) -> None:
        """The same prompt always gets the same answer."""
        question = "How is sick leave earned?"
        assert len({await answer(question) for _ in range(3)}) == 1

    async def test_markdown_headings_are_not_quoted(self) -> None:
        """A heading repeating the question is not offered as its answer."""
        block = ContextBlock(
            1, "d#0", "d", "FAQ", "### What laptop do new staff get?\n\nNew staff get a MacBook.", 1
        )
        assert await answer("What laptop do new staff get?", (block,)) == (
            "New staff get a MacBook [1]."
        )

    async def test_an_embed_function_finds_answers_worded_differently(self) -> None:
        """With cosine similarity, 'holiday' answers a question about 'vacation'."""
        synonyms = {"vacation": "holiday"}

        def embed(texts: Sequence[str]) -> np.ndarray:
            vocab = ["holiday", "badge"]
            rows = []
            for text in texts:
                words = [synonyms.get(w, w) for w in re.findall(r"\w+", text.lower())]
                rows.append([float(words.count(v)) for v in vocab])
            return np.array(rows) + 1e-3

        block = ContextBlock(1, "d#0", "d", "HR", "Staff get 20 holiday days each year.", 1.0)
        prompt = make_prompt("How much vacation?", (block,))
        assert (await ExtractiveLLM().complete(prompt, tenant="a")).text == NO_ANSWER
        completion = await ExtractiveLLM(embed=embed).complete(prompt, tenant="a")
        assert completion.text == "Staff get 20 holiday days each year [1]."


class TestStreamingAndUsage:
    async def test_stream_adds_up_to_the_complete_answer(self) -> None:
        """Deltas, one per sentence, concatenate to the text of complete()."""
        llm = ExtractiveLLM()
        prompt = make_prompt("What are the rules for annual leave?")
        events = [e async for e in llm.stream(prompt, tenant="acme")]
        assert isinstance(events[-1], Done)
        assert sum(isinstance(e, Delta) for e in events) >= 2
        whole = await llm.complete(prompt, tenant="acme")
        assert await collect(llm.stream(prompt, tenant="acme")) == whole

    async def test_usage_is_counted_with_the_given_tokenizer(
        self, minilm_count: TokenCounter
    ) -> None:
        """Prompt tokens cover the question and the blocks read; completion, the answer."""
        prompt = make_prompt("How is sick leave earned?")
        completion = await ExtractiveLLM(count_tokens=minilm_count).complete(prompt, tenant="a")
        read = "\n".join([prompt.question, *(b.text for b in prompt.blocks)])
        assert completion.prompt_tokens == minilm_count(read)
        assert completion.completion_tokens == minilm_count(completion.text)
        assert completion.model == "extractive"
        assert not completion.degraded


class TestTextHandling:
    def test_wrapped_markdown_lines_join_into_one_paragraph(self) -> None:
        """Hard-wrapped lines form one paragraph; links keep their text; templating goes."""
        text = "You must enroll\nwithin [60 days](https://x.gov) of work{% raw %}.\n\n- A list item"
        assert paragraphs(text) == [
            ("", "You must enroll within 60 days of work."),
            ("", "A list item"),
        ]

    def test_stemming_matches_word_forms(self) -> None:
        """Plurals and -ing/-ed forms share a stem; stopwords are not terms."""
        assert stem("leaves") == stem("leave") == stem("leaving")
        assert stem("policies") == stem("policy")
        assert stem("stopped") == stem("stop")
        assert terms("What is the leave policy?") == {stem("leave"), stem("policy")}
