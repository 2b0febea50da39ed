"""Follow-up questions: the one question a conversation's last user turn stands for.

A chat client sends the whole conversation on every turn, but retrieval, the answer cache and
the answerer read one question. A self-contained last turn is that question as it is. An
elliptical one ("What about contractors?", "And how long does it take?", "Does it apply to
them?") names too little to retrieve by, so retrieval gets it completed with the salient terms
of the earlier user turns, newest first: "What about contractors? (annual leave request)". The
answerer gets the user's own words plus only the borrowed names (TTS, Docusign, EGFR): common
borrowed words found the sources, and in the answer they would crowd the words the user chose.

Only user turns are read: assistant turns are our own earlier answers (or a client's forgery of
them), and system turns are instructions, not topics. The result goes through the pipeline like
any question: normalised, screened for injection, cached by its text. `bench/followups.py`
measures the strategies below on follow-up conversations over the demo corpora
(docs/benchmarks/followups.md); the default is the one that answered best there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Words that carry no topic: function words, question words, chat filler.
_STOPWORD_LIST = """
    a about above after again against all also am an and any anything are as ask at be because
    been before being below between both but by can could did do does doing done down during
    each else even ever every few for from further get gets getting give go goes going got had
    has have having he her here hers herself him himself his how however i if in into is it its
    itself just know let like look lot made make many may me might more most much must my myself
    need needs no nor not now of off on once one only or other others our ours ourselves out
    over own please put really same say see shall she should so some something such sure take
    tell than thank thanks that the their theirs them themselves then there these they thing
    things think this those though through to too under until up us use used very want was way
    we well were what whatever when where whether which while who whom whose why will with
    would yes yet you your yours yourself yourselves okay ok hi hello explain describe
"""
STOPWORDS = frozenset(_STOPWORD_LIST.split())

# Words that point back at something said before.
_ANAPHORA_LIST = """
    it its itself they them their theirs themselves these those he him his she her hers there
    such same former latter above
"""
ANAPHORA = frozenset(_ANAPHORA_LIST.split())
# "this"/"that" point back when they open the turn or follow a verb or preposition; after a
# noun ("the form that ...") they are relative pronouns.
_DEMONSTRATIVE = re.compile(
    r"(?:^|\b(?:about|is|does|do|did|was|for|of|with|in|on|to|from|can|will|after|before|"
    r"like|than)\s+)(?:this|that)\b",
    re.IGNORECASE,
)
# Openings that continue the previous question rather than ask a new one.
_CONTINUATION = re.compile(
    r"^\s*(?:and|but|or|also|so|then|what about|how about|what if|same for|and for|"
    r"what else|anything else|how so|why(?: not)?\??$|how come|in that case|if so|"
    r"is that|are those|does that|do they|can they|tell me more|more on|what about for)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_][\w'’-]*", re.UNICODE)
MAX_TERMS = 8
# A turn with at most this many content words leans on the conversation for its topic.
SHORT_TURN = 2

Strategy = Callable[[Sequence[str]], "Question"]


def content_words(text: str) -> list[str]:
    """The words of `text` that can carry a topic, in order, without duplicates (case kept)."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in _WORD.findall(text):
        word = raw.strip("'’-")
        low = word.lower()
        if len(low) < 2 or low in STOPWORDS or low in ANAPHORA or low in seen:
            continue
        if low.isdigit() and len(low) < 2:
            continue
        seen.add(low)
        out.append(word)
    return out


def is_follow_up(turn: str) -> bool:
    """True when `turn` leans on earlier turns: it refers back, continues, or names too little."""
    words = [w.lower() for w in _WORD.findall(turn)]
    if any(w in ANAPHORA for w in words):
        return True
    if _CONTINUATION.search(turn) or _DEMONSTRATIVE.search(turn):
        return True
    return len(content_words(turn)) <= SHORT_TURN


def salient_terms(earlier: Sequence[str], exclude: str, *, limit: int = MAX_TERMS) -> list[str]:
    """Up to `limit` content words of the earlier turns, newest turn first, absent from `exclude`.

    Within a turn, names (capitalised words, acronyms, numbers) come before common words: they
    are what a follow-up most often leaves out ("and for 18F?" after a question about TTS).
    """
    taken = {w.lower() for w in content_words(exclude)}
    out: list[str] = []
    for turn in reversed(earlier):
        words = content_words(turn)
        names = [w for w in words if _is_name(w)]
        for word in names + [w for w in words if not _is_name(w)]:
            if word.lower() not in taken:
                taken.add(word.lower())
                out.append(word)
                if len(out) == limit:
                    return out
    return out


def _is_name(word: str) -> bool:
    return word[:1].isupper() or word.isupper() or any(ch.isdigit() for ch in word)


@dataclass(frozen=True, slots=True)
class Question:
    """What the pipeline is given for a conversation.

    `text` is what retrieval, the injection screen and the answer cache read; `asked` is what
    the answerer reads when it differs (the last turn's own words), else "".
    """

    text: str
    asked: str = ""


def last_turn_only(user_turns: Sequence[str]) -> Question:
    """The last user turn as it is: no memory of the conversation (the baseline)."""
    return Question(user_turns[-1])


def all_turns(user_turns: Sequence[str]) -> Question:
    """Every user turn, oldest first, joined, for retrieval and answerer alike: naive memory."""
    return Question(" ".join(user_turns))


def previous_turn(user_turns: Sequence[str]) -> Question:
    """A follow-up retrieves with the turn before it verbatim, and is answered as asked."""
    last = user_turns[-1]
    if len(user_turns) < 2 or not is_follow_up(last):
        return Question(last)
    return Question(f"{last} ({user_turns[-2]})", last)


def contextual_question(user_turns: Sequence[str]) -> Question:
    """A follow-up completed with the earlier turns' salient terms, for retrieval and answerer."""
    last = user_turns[-1]
    terms = salient_terms(user_turns[:-1], last) if len(user_turns) > 1 else []
    if not terms or not is_follow_up(last):
        return Question(last)
    return Question(f"{last} ({' '.join(terms)})")


def contextual(user_turns: Sequence[str]) -> Question:
    """As contextual_question for retrieval, but answered in the user's own words.

    The borrowed terms find the sources; they do not compete, in the answer, with the words
    the user chose.
    """
    completed = contextual_question(user_turns)
    if completed.text == user_turns[-1]:
        return completed
    return Question(completed.text, user_turns[-1])


def contextual_names(user_turns: Sequence[str]) -> Question:
    """As contextual for retrieval; the answerer also gets the borrowed names (TTS, EGFR ...).

    Names anchor the answer to the topic ("How do I report a problem with it? (Docusign)")
    where common borrowed words ("forms", "templates") would crowd it.
    """
    completed = contextual_question(user_turns)
    if completed.text == user_turns[-1]:
        return completed
    names = [t for t in salient_terms(user_turns[:-1], user_turns[-1]) if _is_name(t)]
    asked = f"{user_turns[-1]} ({' '.join(names)})" if names else user_turns[-1]
    return Question(completed.text, asked)


STRATEGIES: dict[str, Strategy] = {
    "last_turn_only": last_turn_only,
    "all_turns": all_turns,
    "previous_turn": previous_turn,
    "contextual_question": contextual_question,
    "contextual": contextual,
    "contextual_names": contextual_names,
}
DEFAULT_STRATEGY = "contextual_names"


def standalone_question(
    user_turns: Sequence[str], *, strategy: str = DEFAULT_STRATEGY, max_chars: int | None = None
) -> Question:
    """The question the conversation's last user turn asks, as the pipeline needs it.

    Args:
        user_turns: the text of every user turn, oldest first; at least one.
        strategy: a key of STRATEGIES.
        max_chars: the longest question the pipeline takes; borrowed words never push a
            question over it (the last turn alone is returned then).
    """
    if not user_turns:
        raise ValueError("a conversation needs at least one user turn")
    question = STRATEGIES[strategy](user_turns)
    if max_chars is not None and len(question.text) > max_chars:
        return Question(user_turns[-1])
    return question
