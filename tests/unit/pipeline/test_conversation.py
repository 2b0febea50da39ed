"""The standalone question of a conversation: follow-ups detected and completed, others kept."""

from __future__ import annotations

import pytest

from tenantrag.pipeline.conversation import (
    STRATEGIES,
    Question,
    content_words,
    is_follow_up,
    salient_terms,
    standalone_question,
)

LEAVE = "How do staff request annual leave?"


class TestIsFollowUp:
    @pytest.mark.parametrize(
        "turn",
        [
            "Who approves it?",
            "What about contractors?",
            "And for 18F?",
            "How long does that take?",
            "Is there a deadline for them?",
            "Why?",
            "What else?",
            "Tell me more",
            "deadline?",
        ],
    )
    def test_elliptical_turns_are_follow_ups(self, turn: str) -> None:
        """Pronouns, continuations and turns naming too little lean on the conversation."""
        assert is_follow_up(turn)

    @pytest.mark.parametrize(
        "turn",
        [
            LEAVE,
            "Which class must flights under six hours be booked in?",
            "What is the form that contractors sign on arrival?",  # 'that' as a relative pronoun
            "How does the PIV card office handle lost badges?",
        ],
    )
    def test_self_contained_questions_are_not(self, turn: str) -> None:
        """A question naming its own topic is taken as it is."""
        assert not is_follow_up(turn)


class TestSalientTerms:
    def test_newest_turn_first_names_before_common_words(self) -> None:
        """Terms of the newest earlier turn come first, its names (TTS, 18F) before other words."""
        earlier = ["Where do I book travel?", "How does TTS handle annual leave at 18F?"]
        assert salient_terms(earlier, "Who approves it?") == [
            "TTS",
            "18F",
            "handle",
            "annual",
            "leave",
            "book",
            "travel",
        ]

    def test_words_the_last_turn_already_has_are_not_repeated(self) -> None:
        """Borrowing 'leave' for a turn that says 'leave' adds nothing."""
        assert "leave" not in salient_terms([LEAVE], "And sick leave?")

    def test_at_most_limit_terms(self) -> None:
        """A long history contributes a bounded number of terms."""
        earlier = [" ".join(f"word{i}x" for i in range(40))]
        assert len(salient_terms(earlier, "And?", limit=8)) == 8

    def test_function_words_and_pronouns_are_not_content(self) -> None:
        """Stop words, question words and pronouns carry no topic."""
        assert content_words("What is it that they do about the PIV card?") == ["PIV", "card"]


class TestStandaloneQuestion:
    def test_a_single_turn_is_the_question(self) -> None:
        """No conversation: the question as asked, nothing borrowed."""
        assert standalone_question([LEAVE]) == Question(LEAVE)

    def test_follow_up_retrieves_with_terms_and_is_answered_as_asked(self) -> None:
        """The default strategy completes the retrieval text and keeps the user's words apart."""
        question = standalone_question([LEAVE, "Who approves it?"])
        assert question == Question(
            "Who approves it? (staff request annual leave)", "Who approves it?"
        )

    def test_the_answerer_keeps_the_borrowed_names(self) -> None:
        """Names borrowed from earlier turns (Docusign) reach the answerer; common words do not."""
        question = standalone_question(
            ["Which forms have Docusign templates?", "How do I report a problem with it?"]
        )
        assert question.text == "How do I report a problem with it? (Docusign forms templates)"
        assert question.asked == "How do I report a problem with it? (Docusign)"

    def test_a_new_topic_is_not_completed(self) -> None:
        """A self-contained last turn is not dragged back to the earlier topic."""
        flights = "Which class must flights under six hours be booked in?"
        assert standalone_question([LEAVE, flights]) == Question(flights)

    def test_borrowed_words_never_push_a_question_over_the_limit(self) -> None:
        """Near the length limit the last turn is used alone rather than refused."""
        long_turn = "Who approves it? " + "x" * 60
        assert standalone_question([LEAVE, long_turn], max_chars=80) == Question(long_turn)

    def test_no_user_turn_is_an_error(self) -> None:
        """A conversation without a user turn has no question."""
        with pytest.raises(ValueError, match="at least one user turn"):
            standalone_question([])

    @pytest.mark.parametrize("strategy", STRATEGIES)
    def test_every_strategy_keeps_the_last_turn(self, strategy: str) -> None:
        """Whatever is borrowed, the last turn's own words are in the retrieval text."""
        question = standalone_question([LEAVE, "Who approves it?"], strategy=strategy)
        assert "Who approves it?" in question.text
        assert question.asked == "" or question.asked.startswith("Who approves it?")
