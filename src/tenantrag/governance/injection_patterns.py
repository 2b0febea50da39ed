"""The precompiled rules of prompt-injection screening, kept apart from the logic.

`DIRECT_PATTERNS` look at a user's question; `CHUNK_PATTERNS` look at a retrieved document chunk
for text addressed to the model that will read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.IGNORECASE


@dataclass(frozen=True, slots=True)
class Rule:
    """A named pattern and the lower-case words one of which any match must contain.

    Checking the words with `in` first is much cheaper than running the regex over every text
    (most texts hold none of them); an empty `triggers` always runs the regex. Triggers are
    looked for in the text lower-cased with its whitespace runs collapsed to one space.
    """

    name: str
    triggers: tuple[str, ...]
    regex: re.Pattern[str]

    def matches(self, text: str, lowered: str) -> bool:
        """True when the regex matches `text` (`lowered` as described above)."""
        if self.triggers and not any(word in lowered for word in self.triggers):
            return False
        return self.regex.search(text) is not None


# Things people say to a model to make it drop its instructions, in our users' languages.
DIRECT_PATTERNS: tuple[Rule, ...] = tuple(
    Rule(name, triggers, re.compile(pattern, flags))
    for name, triggers, pattern, flags in (
        (
            "ignore_previous",
            ("ignore", "disregard", "forget", "skip", "override", "bypass", "leave"),
            r"\b(?:ignore|disregard|forget|skip|override|bypass|leave)\b[^.!?\n]{0,40}?"
            r"\b(?:previous|prior|above|preceding|earlier|former|initial|original|all|any|your)\b"
            r"[^.!?\n]{0,30}?\b(?:instructions?|prompts?|rules|directions|commands|orders|"
            r"guidelines|tasks|assignments|information|context|everything)\b",
            _I,
        ),
        (
            "forget_everything",
            ("everything",),
            r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?everything\b",
            _I,
        ),
        ("ignore_above", ("above",), r"\b(?:ignore|disregard)\s+(?:the\s+)?above\b", _I),
        (
            "new_instructions",
            ("instruction", "task", "order"),
            r"\b(?:new|further|additional|following)\s+(?:instructions?|tasks?|orders)\s*"
            r"(?:follow|are\s+followed|:|-)|\b(?:change|update)\s+your\s+instructions\b|"
            r"\byour\s+(?:new\s+)?instructions\s+are\s+now\b",
            _I,
        ),
        ("new_task", ("task",), r"\b(?:focus|concentrate)\s+on\s+(?:your|the)\s+new\s+task\b", _I),
        (
            "you_are_now",
            ("now",),
            r"\byou\s+are\s+now\b|\bnow\s+you\s+are\b|\bfrom\s+now\s+on,?\s+you\b",
            _I,
        ),
        (
            "act_as",
            ("act",),
            r"\bi\s+want\s+you\s+to\s+act\s+as\b|\bact\s+as\s+an?\s+\w+\s+interpreter\b",
            _I,
        ),
        (
            "pretend",
            ("pretend",),
            r"\bpretend\s+(?:that\s+)?(?:you\s+are|you're|to\s+be|you\s+can)\b",
            _I,
        ),
        (
            "role_play",
            ("role", "character"),
            r"\brole[- ]?play(?:ing)?\b|\bplay\s+the\s+role\s+of\b|"
            r"\b(?:stay|remain|break)\s+(?:in\s+|out\s+of\s+)?(?:their\s+|your\s+)?character\b",
            _I,
        ),
        (
            "dan",
            ("dan", "stan", "dude", "anything"),
            r"\b(?:DAN|STAN|DUDE)\b|\bdo\s+anything\s+now\b",
            0,
        ),
        (
            "jailbreak",
            ("jail", "mode"),
            r"\bjail\s?br(?:eak|oken)\b|\bdeveloper\s+mode\b|\bgod\s+mode\b",
            _I,
        ),
        (
            "reveal_prompt",
            ("prompt", "instruction", "message", "rule", "guideline"),
            r"\b(?:system|initial|original|hidden|secret|your)\s+(?:prompt|instructions|"
            r"message|rules|guidelines)\b|\bprompt[-_ ]?texts?\b|"
            r"\b(?:show|reveal|print|repeat|output|display)\b[^.?!\n]{0,20}\bprompts?\b",
            _I,
        ),
        (
            "prompt_above",
            ("before", "above", "beginning"),
            r"\b(?:written|said)\s+(?:at\s+the\s+beginning|above|before)\b|"
            r"\b(?:sentences?|text|words)\s+(?:before|above)\s+(?:the|this)\b",
            _I,
        ),
        (
            "just_say",
            ("just", "repeat"),
            r"\bjust\s+(?:say|print|output|write)\b|\brepeat\s+after\s+me\b",
            _I,
        ),
        ("stop", ("stop",), r"^\W*stop\b\s*[:,!-]|\bstop\s+everything\b|\battention\W+stop\b", _I),
        (
            "ignore_documents",
            ("document", "article", "context"),
            r"\b(?:ignore|disregard(?:ing)?)\s+(?:all\s+)?(?:the\s+)?(?:documents|articles|"
            r"context)\b|\b(?:do\s+not|don'?t|dont)\s+(?:look\s+(?:in|at)|use)\s+the\s+"
            r"(?:documents|articles|context)\b|\bnot\s+(?:by|from|according\s+to)\s+the\s+"
            r"(?:provided\s+)?(?:documents|articles|context)\b",
            _I,
        ),
        (
            "no_limits",
            ("override", "bypass", "disable", "ignore"),
            r"\b(?:override|bypass|disable|ignore)\s+(?:your\s+|the\s+|all\s+)?(?:safety|"
            r"filters?|restrictions|guardrails|content\s+polic(?:y|ies)|censorship)\b",
            _I,
        ),
        ("hijack", ("hijack", "pwned"), r"\bhijack(?:ed|ing)?\b|\bpwned\b", _I),
        ("spaced_letters", (), r"(?:\b[a-z]\s){8,}", _I),
        (
            "role_marker",
            ("instruction", "system", "assistant", "human", "developer"),
            r"(?:^|\n|\\n)\s*(?:instruction|system|assistant|human)\s*:",
            _I,
        ),
        (
            "despite_told",
            ("despite",),
            r"\bdespite\s+what\s+you(?:'ve|\s+have)\s+been\s+(?:told|instructed)\b",
            _I,
        ),
        # German.
        (
            "vergiss_vorherige",
            ("vergiss", "vergessen", "ignorier", "missachte", "übergehe"),
            r"\b(?:vergiss|vergessen\s+sie|ignorier(?:e|en\s+sie)?|missachte|übergehe)\b"
            r"[^.!?\n]{0,40}?\b(?:alles|alle|vorherigen?|bisherigen?|obigen?|vorangehenden?|"
            r"vorigen?|anweisungen|aufgaben|aufträge|befehle|instruktionen|gesagte|davor)\b",
            _I,
        ),
        (
            "vorherige_ignorieren",
            ("obigen", "vorherigen", "bisherigen", "vorangegangenen", "abweichend"),
            r"\b(?:obigen|vorherigen|bisherigen|vorangegangenen)\s+(?:\w+\s+){0,2}?"
            r"(?:ignorieren|vergessen|hinter\s+sich)|\babweichend\s+(?:zu|von)\s+(?:den\s+)?"
            r"(?:vorherigen|bisherigen)\b|\b(?:vorherigen|bisherigen)\s+informationen\b",
            _I,
        ),
        (
            "neue_aufgabe",
            ("folgen", "aufgabe"),
            r"\b(?:nun|jetzt)\s+folgen\s+(?:neue|weitere)\s+(?:aufgaben|anweisungen|"
            r"instruktionen)\b|\bauf\s+(?:deine|ihre|die)\s+neue\s+aufgabe\b",
            _I,
        ),
        (
            "du_bist_jetzt",
            ("bist", "wärst"),
            r"\b(?:jetzt|nun|ab\s+sofort)\s+bist\s+du\b|\bdu\s+bist\s+(?:jetzt|nun|ab\s+sofort)\b|"
            r"\bstell\s+dir\s+vor,?\s+du\s+(?:bist|wärst)\b",
            _I,
        ),
        (
            "als_fungieren",
            ("fungier", "agier"),
            r"\bdass\s+(?:sie|du)\s+als\s+[\w-]+(?:\s+[\w-]+)?\s+(?:fungier|agier)(?:en|st)\b",
            _I,
        ),
        (
            "zeige_prompt",
            ("prompt", "anweisungen", "instruktionen"),
            r"\b(?:deine[mn]?|ihre[mn]?)\s+(?:\w+\s+)?(?:prompt|systemprompt|anweisungen|"
            r"instruktionen)\b|\bprompt-texte?s?\b",
            _I,
        ),
        ("achtung_stopp", ("achtung",), r"\bachtung\W+stopp?\b", _I),
        # The same "forget every instruction" in French, Spanish, Croatian and Russian.
        (
            "forget_other_languages",
            ("oubli", "olvid", "zaboravi", "забуд"),
            r"\b(?:oubliez|oublie|olvid[ae]|olvide|zaboravi|забудьте|забудь)\b[^.!?\n]{0,30}?"
            r"(?:instructions|instrucciones|instrukcije|инструкции|todo|tout)",
            _I,
        ),
    )
)

# Text in a document that speaks to the model reading it rather than to a human reader. Checked
# against the 18F handbook and SciFact: handbook prose says "you are now in charge" and "send
# the password separately", Markdown pages carry "<!-- prettier-ignore -->" and "## Systems"
# headings; none of these may match.
CHUNK_PATTERNS: tuple[Rule, ...] = tuple(
    Rule(name, triggers, re.compile(pattern, re.IGNORECASE | re.MULTILINE))
    for name, triggers, pattern in (
        (
            "ignore_instructions",
            ("ignore", "disregard", "override", "forget"),
            r"\b(?:ignore|disregard|override)\b[^.!?\n]{0,40}?\b(?:previous|prior|above|"
            r"preceding|earlier|all|any|your|system)\b[^.!?\n]{0,30}?\b(?:instructions|prompts?|"
            r"rules|guidelines|context)\b|\bforget\b[^.!?\n]{0,40}?\b(?:previous|prior|above|"
            r"all|your)\s+(?:\w+\s+)?(?:instructions|prompts?)\b",
        ),
        (
            "ignore_above",
            ("above",),
            r"\b(?:ignore|disregard)\s+(?:all\s+|everything\s+)?(?:the\s+)?above\b",
        ),
        (
            "chat_markup",
            ("<|", "[inst", "[/inst", "<<sys", "<</sys"),
            r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<</?SYS>>",
        ),
        (
            "role_marker",
            ("system:", "system :", "assistant:", "assistant :", "developer:", "developer :"),
            r"^\s*(?:system|assistant|developer)\s*:",
        ),
        (
            "addressed_to_ai",
            (
                "ai ",
                "ais ",
                "ai,",
                "llm",
                "language model",
                "assistant",
                "chatbot",
                "gpt",
                "if you are",
            ),
            r"\b(?:ai|llm|language\s+model|assistant|chatbot|gpt)s?\b[^.!?\n]{0,30}?\b(?:must|"
            r"should|shall|will)\s+(?:now\s+)?(?:ignore|say|answer|respond|reply|tell|include|"
            r"reveal|output|not\s+mention)\b|\bif\s+you\s+are\s+an?\s+(?:ai|llm|language\s+"
            r"model|assistant)\b",
        ),
        (
            "you_must_now",
            ("you must now", "you should now", "you will now", "new instructions"),
            r"\byou\s+(?:must|should|will)\s+now\s+(?:ignore|disregard|forget|act|respond|answer|"
            r"reply|say|reveal|output|print)\b|\bnew\s+instructions\s*:",
        ),
        (
            "exfiltrate",
            (
                "system prompt",
                "your instructions",
                "api key",
                "conversation",
                "chat history",
                "previous messages",
            ),
            r"\b(?:reveal|print|repeat|output|send|leak|exfiltrate|include)\b[^.!?\n]{0,30}?"
            r"\b(?:(?:the\s+|your\s+)?system\s+prompt|your\s+instructions|api\s+keys?|"
            r"(?:the|this)\s+conversation|chat\s+history|previous\s+messages)\b",
        ),
        (
            "vergiss_anweisungen",
            ("vergiss", "ignorier"),
            r"\b(?:vergiss|ignorier(?:e|en\s+sie)?)\b[^.!?\n]{0,40}?"
            r"\b(?:anweisungen|instruktionen|regeln)\b",
        ),
        (
            "hidden_markup",
            ("<!--", "font-size", "display"),
            r"<!--(?:(?!-->).){0,300}?\b(?:instructions?|assistant|language\s+model|ignore\s+"
            r"(?:all|the|previous|above|your))\b|font-size\s*:\s*0(?:px|pt|em)?\s*[;\"']|"
            r"display\s*:\s*none",
        ),
    )
)


# Runs of zero-width, bidi-mark, word-joiner, BOM or Unicode tag characters: text a person
# cannot see. Searched in the UTF-8 bytes, where Python's re scans far faster than it scans a
# str for characters outside Latin-1.
INVISIBLE_RUN = re.compile(
    rb"(?:\xe2\x80[\x8b-\x8f]|\xe2\x81[\xa0-\xa4]|\xef\xbb\xbf|\xf3\xa0[\x80\x81][\x80-\xbf]){3,}"
)
