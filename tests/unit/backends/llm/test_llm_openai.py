"""OpenAIChatLLM and the full wrapper stack against the OpenAI stand-in, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from structlog.testing import capture_logs
from tests.unit.backends.llm.llm_fakes import FakeClock, make_prompt

from tenantrag.backends.llm import (
    LLM,
    Delta,
    Done,
    FallbackLLM,
    LLMRateLimited,
    LLMRequestRejected,
    LLMServerError,
    LLMTimeout,
    LLMUnreachable,
    build_llm,
    collect,
)
from tenantrag.backends.llm.breaker import CircuitBreaker, CircuitBreakerLLM
from tenantrag.backends.llm.extractive import ExtractiveLLM
from tenantrag.backends.llm.openai import OpenAIChatLLM, parse_retry_after
from tenantrag.backends.llm.prompt import NO_ANSWER
from tenantrag.backends.llm.retry import RetryingLLM
from tenantrag.backends.llm.tokens import TokenCounter, count_chat_tokens
from tenantrag.settings import LLMSettings
from tenantrag.testing import DEFAULT_ANSWER, Drop, Fail, Hang, OpenAIStandIn, Reply

KEY = "sk-test-secret-0123456789"
PROMPT = make_prompt("How much annual leave do employees earn?")
Factory = Callable[..., OpenAIChatLLM]


class Sleeps(list[float]):
    """Records each requested wait instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
async def adapter(standin: OpenAIStandIn) -> AsyncIterator[Factory]:
    """Makes adapters pointed at the stand-in, and closes them after the test."""
    made: list[OpenAIChatLLM] = []

    def make(**options: object) -> OpenAIChatLLM:
        settings = LLMSettings(base_url=standin.base_url, model="gpt-4o-mini", api_key=KEY)
        llm = OpenAIChatLLM.from_settings(settings, **({"timeout": 2.0} | options))
        made.append(llm)
        return llm

    yield make
    for llm in made:
        await llm.aclose()


def stack(upstream: OpenAIChatLLM, breaker: CircuitBreaker, sleeps: Sleeps) -> LLM:
    """The production composition: fallback ← breaker ← retry ← adapter."""
    retrying = RetryingLLM(upstream, sleep=sleeps, jitter=lambda: 0.0)
    return FallbackLLM(CircuitBreakerLLM(retrying, breaker), ExtractiveLLM())


class TestAdapter:
    async def test_completes_with_the_servers_usage(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """The answer and the usage figures come from the response."""
        completion = await adapter().complete(PROMPT, tenant="acme")
        assert completion.text == DEFAULT_ANSWER
        assert completion.model == "gpt-4o-mini"
        words = sum(len(m["content"].split()) for m in PROMPT.messages)
        assert (completion.prompt_tokens, completion.completion_tokens) == (words, 11)
        assert not completion.degraded

    async def test_sends_the_chat_request_with_the_key(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """The request carries the model, the prompt's messages, the limits and the bearer key."""
        await adapter().complete(PROMPT, tenant="acme")
        (request,) = standin.recorded
        assert request.path == "/v1/chat/completions"
        assert request.authorization == f"Bearer {KEY}"
        assert request.body["model"] == "gpt-4o-mini"
        assert request.body["messages"] == PROMPT.messages
        assert request.body["max_tokens"] == 512
        assert request.body["temperature"] == 0.0

    async def test_streams_deltas_then_usage(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """Streamed pieces add up to the answer, and the final usage chunk is reported."""
        events = [e async for e in adapter().stream(PROMPT, tenant="acme")]
        deltas = [e.text for e in events if isinstance(e, Delta)]
        assert len(deltas) > 5
        done = events[-1]
        assert isinstance(done, Done)
        assert "".join(deltas) == done.completion.text == DEFAULT_ANSWER
        assert done.completion.completion_tokens == 11
        assert standin.recorded[0].body["stream_options"] == {"include_usage": True}

    async def test_without_server_usage_tokens_are_counted_with_tiktoken(
        self, standin: OpenAIStandIn, adapter: Factory, gpt_count: TokenCounter
    ) -> None:
        """A server that reports no usage is billed by gpt-4o-mini's own tokenizer."""
        standin.script(Reply(usage=False), Reply(usage=False))
        whole = await adapter().complete(PROMPT, tenant="acme")
        streamed = await collect(adapter().stream(PROMPT, tenant="acme"))
        for completion in (whole, streamed):
            assert completion.prompt_tokens == count_chat_tokens(PROMPT.messages, gpt_count)
            assert completion.completion_tokens == gpt_count(DEFAULT_ANSWER)

    @pytest.mark.parametrize(
        ("behaviour", "error"),
        [
            (Fail(500), LLMServerError),
            (Fail(503, retry_after=7), LLMServerError),
            (Fail(429, retry_after=3), LLMRateLimited),
            (Fail(400), LLMRequestRejected),
            (Hang(3), LLMTimeout),
            (Drop(), LLMUnreachable),
        ],
        ids=["500", "503", "429", "400", "hang", "drop"],
    )
    @pytest.mark.parametrize("streaming", [False, True], ids=["whole", "stream"])
    async def test_failures_map_to_our_errors(
        self,
        standin: OpenAIStandIn,
        adapter: Factory,
        behaviour: Fail | Hang | Drop,
        error: type[Exception],
        streaming: bool,
    ) -> None:
        """Each wire failure becomes the matching error, with the server's Retry-After."""
        standin.script(behaviour)
        llm = adapter(timeout=0.3)
        with pytest.raises(error) as raised:
            if streaming:
                await collect(llm.stream(PROMPT, tenant="acme"))
            else:
                await llm.complete(PROMPT, tenant="acme")
        if isinstance(behaviour, Fail) and behaviour.retry_after is not None:
            assert getattr(raised.value, "retry_after", None) == behaviour.retry_after

    async def test_an_unreachable_server_is_a_connection_error(self) -> None:
        """Nothing listening on the port maps to LLMUnreachable."""
        with OpenAIStandIn() as gone:
            url = gone.base_url
        llm = OpenAIChatLLM(base_url=url, model="gpt-4o-mini", timeout=1.0)
        with pytest.raises(LLMUnreachable):
            await llm.complete(PROMPT, tenant="acme")
        await llm.aclose()

    async def test_the_key_never_appears_in_errors_logs_or_repr(
        self, standin: OpenAIStandIn
    ) -> None:
        """A wrong key is refused with 401; neither that key nor the real one leaks anywhere."""
        wrong = "sk-wrong-key-9876543210"
        llm = OpenAIChatLLM(base_url=standin.base_url, model="gpt-4o-mini", api_key=wrong)
        with capture_logs() as logs:
            fallback = FallbackLLM(llm, ExtractiveLLM())
            completion = await fallback.complete(PROMPT, tenant="acme")
            with pytest.raises(LLMRequestRejected) as raised:
                await llm.complete(PROMPT, tenant="acme")
        await llm.aclose()
        assert completion.degraded
        assert raised.value.status == 401
        for text in (str(raised.value), repr(llm), repr(logs)):
            assert wrong not in text and KEY not in text


class TestFullStack:
    async def test_persistent_500s_give_a_degraded_extractive_answer(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """Three 500s exhaust the retries; the caller gets a cited offline answer, not a 5xx."""
        standin.script(Fail(500), Fail(500), Fail(500))
        sleeps = Sleeps()
        llm = stack(adapter(), CircuitBreaker(), sleeps)
        completion = await llm.complete(PROMPT, tenant="acme")
        assert completion.degraded
        assert completion.model == "extractive"
        assert "[1]" in completion.text
        assert standin.requests == 3
        assert sleeps == [0.5, 1.0]

    async def test_429_with_retry_after_is_waited_out(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """A 429 asking for 2 s is retried after 2 s and then answered by the model."""
        standin.script(Fail(429, retry_after=2))
        sleeps = Sleeps()
        completion = await stack(adapter(), CircuitBreaker(), sleeps).complete(PROMPT, tenant="a")
        assert completion.text == DEFAULT_ANSWER
        assert not completion.degraded
        assert (standin.requests, sleeps) == (2, [2.0])

    async def test_a_hanging_server_times_out_into_a_degraded_answer(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """Three attempts that each hang past the timeout end in the offline answer."""
        standin.script(Hang(5), Hang(5), Hang(5))
        completion = await stack(adapter(timeout=0.2), CircuitBreaker(), Sleeps()).complete(
            PROMPT, tenant="acme"
        )
        assert completion.degraded
        assert standin.requests == 3

    async def test_no_retry_starts_after_the_time_limit(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """Once max_elapsed has passed (here during the first timeout) no attempt follows."""
        standin.script(Hang(5), Hang(5), Hang(5))
        retrying = RetryingLLM(adapter(timeout=0.3), max_elapsed=0.1, sleep=Sleeps())
        with pytest.raises(LLMTimeout):
            await retrying.complete(PROMPT, tenant="acme")
        assert standin.requests == 1

    async def test_a_bad_request_is_not_retried_but_still_answered(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """A 400 is sent once, and the user still gets the degraded answer."""
        standin.script(Fail(400))
        completion = await stack(adapter(), CircuitBreaker(), Sleeps()).complete(PROMPT, tenant="a")
        assert completion.degraded
        assert standin.requests == 1

    async def test_an_open_circuit_answers_degraded_without_calling_the_api(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """After five failed requests (15 attempts) the sixth never reaches the API."""
        standin.default = Fail(500)
        clock = FakeClock()
        llm = stack(adapter(), CircuitBreaker(clock=clock), Sleeps())
        for _ in range(5):
            assert (await llm.complete(PROMPT, tenant="acme")).degraded
        assert standin.requests == 15
        assert (await llm.complete(PROMPT, tenant="acme")).degraded
        assert standin.requests == 15
        standin.default = Reply()
        clock.advance(60)
        assert not (await llm.complete(PROMPT, tenant="acme")).degraded
        assert standin.requests == 16

    async def test_streaming_falls_back_before_any_text(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """A stream whose every attempt fails is served by the offline answerer, degraded."""
        standin.script(Fail(502), Fail(502), Fail(502))
        events = [
            e async for e in stack(adapter(), CircuitBreaker(), Sleeps()).stream(PROMPT, tenant="a")
        ]
        done = events[-1]
        assert isinstance(done, Done) and done.completion.degraded
        assert "".join(e.text for e in events if isinstance(e, Delta)) == done.completion.text

    async def test_a_stream_cut_midway_ends_with_a_notice(
        self, standin: OpenAIStandIn, adapter: Factory
    ) -> None:
        """Text already sent stays; the stream ends with an interruption notice, degraded."""
        standin.script(Drop(after_chunks=3))
        llm = stack(adapter(), CircuitBreaker(), Sleeps())
        completion = await collect(llm.stream(PROMPT, tenant="acme"))
        assert completion.degraded
        assert completion.text.startswith("According to the ")
        assert completion.text.endswith(FallbackLLM.INTERRUPTED)
        assert standin.requests == 1


class TestBuildLLM:
    def test_extractive_is_the_default(self, minilm_count: TokenCounter) -> None:
        """Default settings give the offline answerer alone."""
        assert isinstance(build_llm(LLMSettings(), count_tokens=minilm_count), ExtractiveLLM)

    async def test_openai_settings_build_the_resilient_stack(
        self, standin: OpenAIStandIn, minilm_count: TokenCounter
    ) -> None:
        """The OpenAI provider answers via the stand-in, degrades on failure, uses the breaker."""
        settings = LLMSettings(
            provider="openai",
            model="gpt-4o-mini",
            base_url=standin.base_url,
            api_key=KEY,
            max_attempts=1,
        )
        breaker = CircuitBreaker(threshold=1)
        async with httpx.AsyncClient() as client:
            llm = build_llm(settings, count_tokens=minilm_count, breaker=breaker, client=client)
            assert (await llm.complete(PROMPT, tenant="acme")).text == DEFAULT_ANSWER
            standin.script(Fail(500))
            assert (await llm.complete(PROMPT, tenant="acme")).degraded
            assert breaker.state("acme", "openai:gpt-4o-mini") == "open"
            assert (await llm.complete(PROMPT, tenant="acme")).degraded
        assert standin.requests == 2


class TestStandIn:
    async def test_embeddings_are_deterministic_unit_vectors(self, standin: OpenAIStandIn) -> None:
        """The same text gets the same vector; vectors have the asked-for size and unit length."""
        async with httpx.AsyncClient(base_url=standin.base_url) as client:
            body = {"model": "text-embedding-3-small", "input": ["a", "b", "a"], "dimensions": 8}
            response = await client.post(
                "/embeddings", json=body, headers={"Authorization": f"Bearer {KEY}"}
            )
        vectors = [row["embedding"] for row in response.json()["data"]]
        assert len(vectors[0]) == 8
        assert vectors[0] == vectors[2] != vectors[1]
        assert sum(x * x for x in vectors[1]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    """Seconds, OpenAI's milliseconds and past HTTP dates are read; nonsense is ignored."""
    assert parse_retry_after(httpx.Headers(headers)) == seconds


class TestSharedRefusal:
    """The model refuses by the rule the extractive answerer applies, in the same words."""

    @pytest.mark.parametrize(
        "said",
        [
            NO_ANSWER,
            "**The provided documents do not answer this question.** [2]",
            "The provided documents do not answer this question. However, it is likely 42.",
            "the provided documents do NOT answer this question",
        ],
    )
    async def test_a_refusal_comes_back_as_no_answer_exactly(
        self, standin: OpenAIStandIn, adapter: Factory, said: str
    ) -> None:
        """Whatever the model adds to its refusal (a stray citation, a guess) is dropped, whole
        or streamed, and the stream never sends the refusal's start before it knows."""
        standin.script(Reply(said), Reply(said))
        whole = await adapter().complete(PROMPT, tenant="acme")
        events = [e async for e in adapter().stream(PROMPT, tenant="acme")]
        deltas = [e.text for e in events if isinstance(e, Delta)]
        done = events[-1]
        assert isinstance(done, Done)
        assert whole.text == done.completion.text == NO_ANSWER
        assert deltas == [NO_ANSWER]
        assert whole.text == ExtractiveLLM().reply("What is the capital of Mongolia?", ()).text

    @pytest.mark.parametrize(
        "said",
        ["The provided leave policy gives 13 days [1].", "The provided", "Thirteen days [1]."],
    )
    async def test_an_answer_that_starts_like_a_refusal_is_sent_unchanged(
        self, standin: OpenAIStandIn, adapter: Factory, said: str
    ) -> None:
        """Text held back while it could have been the refusal is released as it was written."""
        standin.script(Reply(said), Reply(said))
        whole = await adapter().complete(PROMPT, tenant="acme")
        streamed = await collect(adapter().stream(PROMPT, tenant="acme"))
        assert whole.text == streamed.text == said
