"""The precompiled rules of prompt-injection screening, kept apart from the logic.

`DIRECT_PATTERNS` look at a user's question; `CHUNK_PATTERNS` look at a retrieved document chunk
for text addressed to the model that will read it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import ahocorasick

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


class RuleSet:
    """Rules whose triggers are found in one pass (Aho-Corasick).

    Only the rules with a trigger in the text run their regex. Checking some 250 triggers one
    `in` at a time cost about 100 µs on a 1,000-character chunk; one automaton pass costs
    about 15.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        """Index every rule's triggers."""
        self.rules = tuple(rules)
        self._always = tuple(i for i, rule in enumerate(self.rules) if not rule.triggers)
        by_trigger: dict[str, set[int]] = {}
        for i, rule in enumerate(self.rules):
            for trigger in rule.triggers:
                by_trigger.setdefault(trigger, set()).add(i)
        self._automaton = ahocorasick.Automaton()
        for trigger, indices in by_trigger.items():
            self._automaton.add_word(trigger, frozenset(indices))
        self._automaton.make_automaton()

    def names(self, text: str, lowered: str) -> tuple[str, ...]:
        """The names of the rules that match `text` (`lowered`: lower case, spaces collapsed)."""
        candidates: set[int] = set(self._always)
        for _end, indices in self._automaton.iter(lowered):
            candidates |= indices
        return tuple(
            self.rules[i].name
            for i in sorted(candidates)
            if self.rules[i].regex.search(text) is not None
        )


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
            # Not "you are now eligible / enrolled / able to ...": that is news, not a new role.
            r"\b(?:you\s+are\s+now|now\s+you\s+are)\b(?!\s+(?:eligible|enrolled|registered|"
            r"signed|logged|ready|able|connected|subscribed|required|responsible|in\s+charge|on\s|"
            r"in\s+the|at\s|part\s+of|a\s+member|set\s+up|done|approved|covered|entitled))"
            r"|\bfrom\s+now\s+on,?\s+you\b",
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
            ("override", "bypass", "disable", "ignore", "disregard", "without", "no "),
            r"\b(?:override|bypass|disable|ignore|disregard)\s+(?:your\s+|the\s+|all\s+)?(?:safety|"
            r"filters?|restrictions|guardrails|content\s+polic(?:y|ies)|censorship)\b"
            r"|\b(?:ignore|disregard|forget|bypass|break)\s+(?:the\s+|your\s+|these\s+|all\s+)?"
            r"(?:rules|guidelines|instructions|restrictions)\s+(?:you\s+(?:were|have\s+been)\s+"
            r"(?:given|told)|(?:set|given)\s+(?:to|for)\s+you)\b"
            r"|\b(?:answer|respond|reply|talk)\s+(?:\w+\s+)?(?:without|with\s+no)\s+(?:any\s+)?"
            r"(?:limits|limitations|restrictions|filters|censorship|rules|guidelines)\b",
            _I,
        ),
        (
            "exfiltrate_secrets",
            (
                "api key",
                "conversation",
                "chat history",
                "previous messages",
                "credentials",
                "hidden instructions",
                "internal instructions",
                "secret",
            ),
            r"\b(?:print|reveal|show|output|list|give|send|leak|dump|display|repeat|tell)\b"
            r"[^.!?\n]{0,30}?\b(?:api\s+keys?|(?:full\s+|whole\s+|entire\s+)?conversation\s+"
            r"history|chat\s+history|previous\s+messages|credentials|hidden\s+instructions|"
            r"internal\s+instructions|secret\s+(?:keys?|instructions|prompt))\b",
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


# The same attacks in the ten most spoken languages and those the red team used (German's first
# rules live above): "ignore the previous instructions", "forget everything", "reveal the system
# prompt", "disregard the rules" (OVERRIDE: questions and chunks), and "you are now ...", "from now
# on you ..." (IDENTITY: questions only, since documents say "vous êtes maintenant inscrit").
# Written from the classes of attack, not from a list of attack texts.
# fmt: off
_LANGUAGES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "es": (
        ("ignor", "olvid", "descart", "omis", "no sigas", "no tengas", "no hagas", "ahora",
         "sistema", "nuevas instr", "modo desarr"),
        r"\b(?:ignor[ae]|ignorar|ignore[ns]?|olvid[ae]|olvidar|descart[ae]|omit[ae]"
        r"|haz\s+caso\s+omiso\s+de|no\s+(?:sigas|tengas\s+en\s+cuenta|hagas\s+caso\s+(?:a|de)))\b"
        r"[^.!?\n]{0,40}?\b(?:instrucciones|indicaciones|[oó]rdenes|reglas|normas|directrices"
        r"|restricciones|todo)\b"
        r"|\b(?:revela|mu[eé]strame|muestra|dime|imprime|repite)\b[^.!?\n]{0,30}?"
        r"\b(?:prompt|mensaje|instrucciones)\s+(?:del\s+|de\s+)?sistema\b"
        r"|\b(?:nuevas\s+instrucciones\s*:|modo\s+desarrollador|prompt\s+del\s+sistema)"
        # "forget what you were told": the orders named by what they were, not by a noun
        r"|(?<!no\s)\b(?:ignor[ae]|olvid[ae]|descart[ae]|omit[ae])\s+(?:todo\s+)?lo\s+que\s+(?:se\s+)?"
        r"(?:te\s+|le\s+)?(?:dijeron|dije|han\s+dicho|hayan\s+dicho|indicaron|ordenaron|pidieron"
        r"|programaron|ense[nñ]aron)\b",
        r"\b(?:a\s+partir\s+de\s+ahora|desde\s+ahora)\s*,?\s+(?:eres|ser[aá]s|act[uú]as?)\b"
        r"|\bahora\s+eres\b",
    ),
    "pt": (
        ("ignor", "esque", "desconsider", "não sig", "nao sig", "agora", "sistema",
         "novas instr", "modo desenv"),
        r"\b(?:ignor[ae]|ignorar|esque[cç]a|esquecer|desconsider[ae]|n[aã]o\s+sig[ae])\b"
        r"[^.!?\n]{0,40}?\b(?:instru[cç][oõ]es|ordens|regras|diretrizes|restri[cç][oõ]es|tudo)\b"
        r"|\b(?:revele|mostre|diga|imprima|repita)\b[^.!?\n]{0,30}?"
        r"\b(?:prompt|mensagem|instru[cç][oõ]es)\s+do\s+sistema\b"
        r"|\b(?:novas\s+instru[cç][oõ]es\s*:|modo\s+desenvolvedor|prompt\s+do\s+sistema)"
        r"|(?<!n[aã]o\s)\b(?:ignor[ae]|esque[cç]a|desconsider[ae])\s+(?:tudo\s+)?o\s+que\s+(?:te\s+|lhe\s+)?"
        r"(?:disseram|foi\s+dito|mandaram|pediram|ensinaram)\b",
        r"\b(?:a\s+partir\s+de\s+agora|de\s+agora\s+em\s+diante)\s*,?\s+(?:voc[eê]|tu)\s+"
        r"(?:[eé]s?|ser[aá]s?|age|agir[aá])\b|\bagora\s+voc[eê]\s+[eé]\s+(?:um|uma|o|a)\b",
    ),
    "fr": (
        ("ignor", "oubli", "néglig", "neglig", "compte", "abstraction", "ne suis", "respecte",
         "maintenant", "désormais", "desormais", "dorénavant", "système", "systeme",
         "nouvelles instr", "développeur", "developpeur"),
        r"\b(?:ignore[rz]?|oublie[rz]?|n[eé]glige[rz]?|ne\s+(?:tiens|tenez)\s+pas\s+compte\s+des?"
        r"|fais\s+abstraction\s+des?|ne\s+suis\s+pas|ne\s+respecte[z]?\s+pas)\b[^.!?\n]{0,40}?"
        r"\b(?:instructions|consignes|r[eè]gles|ordres|directives|restrictions|tout)\b"
        r"|\b(?:r[eé]v[eè]le[rz]?|montre[rz]?|affiche[rz]?|donne[rz]?[-\s]moi|r[eé]p[eè]te[rz]?)\b"
        r"[^.!?\n]{0,30}?\b(?:prompt|invite|message|instructions)\s+(?:du\s+)?syst[eè]me\b"
        r"|\b(?:nouvelles\s+instructions\s*:|mode\s+d[eé]veloppeur|prompt\s+syst[eè]me)"
        r"|\b(?:ignore[rz]?|oublie[rz]?)\s+(?:tout\s+)?ce\s+qu(?:'|e\s+|’)(?:on\s+|l'on\s+)?"
        r"(?:t'a|vous\s+a|t’a)\s+(?:dit|demand[eé]|appris|ordonn[eé])",
        r"\b(?:tu\s+es|vous\s+[eê]tes)\s+(?:maintenant|d[eé]sormais)\s+(?:un|une|le|la|DAN)\b"
        r"|\b(?:[àa]\s+partir\s+de\s+maintenant|d[eé]sormais|dor[eé]navant)\s*,?\s+"
        r"(?:tu\s+es|tu\s+seras|vous\s+[eê]tes|vous\s+serez|tu\s+agis|agis)\b",
    ),
    "it": (
        ("ignora", "dimentic", "trascura", "non seguire", "non rispettare", "non tenere", "sei",
         "sistema", "nuove istr", "sviluppatore"),
        r"\b(?:ignora(?:re)?|dimentica(?:re)?|trascura(?:re)?|non\s+seguire|non\s+rispettare"
        r"|non\s+tenere\s+conto\s+del?l?e?)\b[^.!?\n]{0,40}?"
        r"\b(?:istruzioni|indicazioni|regole|ordini|direttive|restrizioni|tutto)\b"
        r"|\b(?:rivela(?:mi)?|mostra(?:mi)?|dimmi|stampa|ripeti)\b[^.!?\n]{0,30}?"
        r"\b(?:prompt|messaggio|istruzioni)\s+(?:di|del)\s+sistema\b"
        r"|\b(?:nuove\s+istruzioni\s*:|modalit[aà]\s+sviluppatore|prompt\s+di\s+sistema)"
        r"|(?<!non\s)\b(?:ignora|dimentica|trascura)\s+(?:tutto\s+)?(?:quello|ci[oò]|quanto)\s+che\s+"
        r"(?:ti\s+)?(?:hanno\s+detto|[eè]\s+stato\s+detto|ho\s+detto|dissero|hanno\s+chiesto)",
        r"\b(?:ora|adesso)\s+sei\s+(?:un|una|uno|il|la|lo|libero|libera|DAN)\b"
        r"|\b(?:d'ora|da\s+ora|da\s+adesso)\s+in\s+poi\s*,?\s+(?:tu\s+)?(?:sei|sarai|agisci)\b",
    ),
    "nl": (
        ("negeer", "vergeet", "veronachtzaam", "volg niet", "bent nu", "ben je", "ben jij",
         "systeem", "nieuwe instr", "ontwikkelaar"),
        r"\b(?:negeer|vergeet|veronachtzaam|volg\s+niet)\b[^.!?\n]{0,40}?"
        r"\b(?:instructies|opdrachten|regels|aanwijzingen|richtlijnen|beperkingen|alles)\b"
        r"|\b(?:onthul|toon|laat\s+zien|geef|herhaal|print)\b[^.!?\n]{0,30}?"
        r"\b(?:systeemprompt|systeem\s*prompt|systeeminstructies)\b"
        r"|\b(?:nieuwe\s+instructies\s*:|ontwikkelaarsmodus|systeemprompt)"
        r"|\b(?:negeer|vergeet)\s+(?:alles\s+)?wat\s+(?:je|jou|u)\s+(?:eerder\s+|is\s+|werd\s+)?"
        r"(?:is\s+|werd\s+)?(?:verteld|gezegd|opgedragen|gevraagd)",
        r"\b(?:je\s+bent|jij\s+bent|u\s+bent)\s+nu\s+(?:een|de|het|DAN)\b"
        r"|\bvanaf\s+nu\s+ben\s+(?:je|jij)\b",
    ),
    "ru": (
        ("игнор", "забуд", "внимания", "не следуй", "отбрось", "пренебреги", "теперь", "отныне",
         "с этого момента", "системн", "инструкци", "режим разраб", "не соблюд", "не выполн",
         "не слушай", "не подчин", "наруш"),
        r"(?:игнорируй(?:те)?|проигнорируй(?:те)?|забудь(?:те)?|не\s+обращай(?:те)?\s+внимания\s+на"
        r"|не\s+следуй(?:те)?|отбрось(?:те)?|пренебреги|не\s+соблюдай(?:те)?|не\s+выполняй(?:те)?"
        r"|не\s+слушай(?:те)?|не\s+подчиняйся|не\s+подчиняйтесь|наруш(?:ь|ьте|ай))[^.!?\n]{0,40}?"
        r"(?:инструкци|указани|правил|команд|ограничени|всё|все\b|предыдущ)"
        r"|(?:покажи(?:те)?|раскрой(?:те)?|выведи(?:те)?|повтори(?:те)?|напиши(?:те)?|сообщи(?:те)?)"
        r"[^.!?\n]{0,30}?(?:системн\w+\s+(?:промпт|подсказк|инструкци|сообщени)|свои\s+инструкци)"
        r"|(?:новые\s+инструкции\s*:|режим\s+разработчика|системн\w+\s+промпт)",
        r"(?:отныне|с\s+этого\s+момента)\s*,?\s+(?:ты|вы)\b"
        r"|теперь\s+(?:ты|вы)\s+(?:—|-|являешься|являетесь|будешь|будете|не\s+(?:ассистент|бот))"
        r"|теперь\s+(?:ты|вы)\b[^.!?\n]{0,40}?без\s+(?:каких-либо\s+|всяких\s+|любых\s+)?"
        r"(?:ограничений|правил|цензуры|фильтров)",
    ),
    "zh": (
        ("忽略", "忽视", "无视", "無視", "忘", "不要", "别管", "抛弃", "拋棄", "你现在", "你現在",
         "现在你", "現在你", "从现在", "從現在", "系统", "系統", "你的指令", "你的提示",
         "新的指令", "开发者", "開發者"),
        r"(?:忽略|忽视|无视|無視|忘记|忘記|忘掉|不要理会|不要理會|不要遵守|不要遵循|别管|拋棄|抛弃)"
        r".{0,12}?(?:指令|指示|说明|說明|规则|規則|提示|要求|限制|设定|設定|一切|所有)"
        r"|(?:显示|顯示|透露|告诉我|告訴我|输出|輸出|打印|泄露|洩露|重复|重複).{0,10}?"
        r"(?:系统提示|系統提示|系统指令|系統指令|系统消息|系統消息|你的指令|你的提示)"
        r"|(?:新的指令[:：]|开发者模式|開發者模式)",
        r"(?:你现在是|你現在是|现在你是|現在你是)|(?:从现在开始|從現在開始|从现在起|從現在起)[,，]?你",
    ),
    "ja": (
        ("無視", "忘れ", "破棄", "今から", "これから", "今後", "システムプロンプト", "新しい指示",
         "開発者モード"),
        r"(?:以前|前|上記|これまで|先ほど|すべて|全て)の.{0,8}?(?:指示|命令|指令|ルール|規則|制約|設定)"
        r"(?:を|は).{0,4}?(?:無視|忘れ|破棄)"
        r"|(?:指示|命令|ルール|規則|制約)を(?:すべて|全て)?(?:無視|忘れ)"
        r"|システムプロンプト.{0,10}?(?:表示|教え|見せ|出力|明か|繰り返)"
        r"|(?:新しい指示[:：]|開発者モード)",
        r"(?:今から|これから|今後)[、,]?(?:あなたは|君は|お前は)|あなたは今から",
    ),
    "hi": (
        ("निर्देश", "नियम", "आदेश", "अब", "सिस्टम"),
        r"(?:पिछले|पिछली|पहले\s+के|सभी|सारे|ऊपर\s+(?:के|दिए))\s.{0,20}?"
        r"(?:निर्देशों|निर्देश|नियमों|नियम|आदेशों|आदेश)"
        r"\s.{0,12}?(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|नज़रंदाज़|भूल|उपेक्षा|मत\s+मानो|न\s+मानें)"
        r"|(?:निर्देशों|निर्देश|नियमों|नियम)\s+को\s+(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)"
        r"|(?:सिस्टम\s+प्रॉम्प्ट|सिस्टम\s+प्रोम्प्ट|सिस्टम\s+निर्देश)",
        r"अब\s+से\s+(?:तुम|आप)\b|अब\s+(?:तुम|आप)\s+(?:एक\s+)?\S+\s+(?:हो|हैं)\s*[।.!]?",
    ),
    "bn": (
        ("নির্দেশ", "নিয়ম", "আদেশ", "এখন", "সিস্টেম"),
        r"(?:আগের|পূর্ববর্তী|পূর্বের|সব|সমস্ত|উপরের)\s.{0,20}?"
        r"(?:নির্দেশ|নির্দেশনা|নির্দেশাবলী|নিয়ম|আদেশ)"
        r".{0,16}?(?:উপেক্ষা|ভুলে|অগ্রাহ্য|মানবে\s+না|মেনো\s+না)"
        r"|(?:সিস্টেম\s+প্রম্পট|সিস্টেম\s+নির্দেশ)",
        r"(?:এখন\s+থেকে\s+)(?:তুমি|আপনি)|(?:তুমি|আপনি)\s+এখন\s+(?:একটি|একজন)",
    ),
    "ar": (
        ("تجاهل", "انس", "لا تتبع", "لا تلتزم", "تخل", "اهمل", "أهمل", "الآن", "الان", "النظام",
         "تعليمات جديدة", "وضع المطور"),
        r"(?:تجاهل|تجاهلي|تجاهلوا|انس|انسى|انسي|لا\s+تتبع|لا\s+تلتزم\s+ب|تخل\s+عن|اهمل|أهمل)"
        r".{0,30}?(?:التعليمات|تعليمات|الأوامر|الاوامر|التوجيهات|القواعد|القيود|كل\s+شيء|السابقة)"
        r"|(?:اكشف|أظهر|اظهر|اعرض|أعطني|اطبع|كرر).{0,20}?(?:موجه|تعليمات|رسالة)\s+النظام"
        r"|(?:تعليمات\s+جديدة\s*:|وضع\s+المطور)",
        r"(?:أنت\s+الآن|انت\s+الان|أنت\s+الان)|(?:من\s+الآن\s+فصاعد|من\s+الان\s+فصاعد)ا?\s*،?\s*(?:أنت|انت)",
    ),
    "ur": (
        ("ہدایات", "ہدایت", "احکامات", "اصول", "قواعد", "اب", "سسٹم"),
        r"(?:پچھلی|پچھلے|تمام|سابقہ|اوپر\s+دی\s+گئی).{0,20}?"
        r"(?:ہدایات|ہدایتوں|ہدایت|احکامات|اصولوں|قواعد)"
        r".{0,16}?(?:نظر\s+انداز|بھول|مت\s+مانو|نہ\s+مانیں)"
        r"|(?:ہدایات|ہدایتوں|اصولوں|قواعد)\s+کو\s+(?:نظر\s+انداز|بھول)"
        r"|(?:سسٹم\s+پرامپٹ|سسٹم\s+ہدایات)",
        r"اب\s+سے\s+(?:تم|آپ)\b|(?:تم|آپ)\s+اب\s+(?:ایک\s+)?\S+\s+(?:ہو|ہیں)",
    ),
    "de": (
        ("ignorier", "missachte", "vergiss", "vergessen", "systemprompt", "system-prompt",
         "systemnachricht", "systemanweisung", "entwicklermodus", "ab jetzt"),
        r"\b(?:ignoriere|ignoriert|ignorieren\s+sie|missachte|vergiss|vergessen\s+sie)\b"
        r"[^.!?\n]{0,40}?\b(?:regeln|richtlinien|einschränkungen|vorgaben|beschränkungen)\b"
        r"|\b(?:zeige?|gib|verrate|nenne|wiederhole)\b[^.!?\n]{0,30}?\b(?:system-?prompt"
        r"|systemnachricht|systemanweisung(?:en)?)\b|\b(?:entwicklermodus|systemprompt)\b",
        r"\bab\s+jetzt\s+bist\s+du\b",
    ),
}
# fmt: on
MULTILINGUAL_OVERRIDE: tuple[Rule, ...] = tuple(
    Rule(f"override_{lang}", triggers, re.compile(override, re.IGNORECASE))
    for lang, (triggers, override, _identity) in _LANGUAGES.items()
)
MULTILINGUAL_IDENTITY: tuple[Rule, ...] = tuple(
    Rule(f"identity_{lang}", triggers, re.compile(identity, re.IGNORECASE))
    for lang, (triggers, _override, identity) in _LANGUAGES.items()
)


# Chat-template and role tokens, and headers that pretend to open a system turn: none belongs in
# a question or in a document a person wrote for people. `### System` alone is a heading a
# handbook may have ("## Systems" is common), so a header needs "SYSTEM" in capitals with an
# override word, or a line of its own followed by an order.
TEMPLATE_PATTERNS: tuple[Rule, ...] = tuple(
    Rule(name, triggers, re.compile(pattern, flags))
    for name, triggers, pattern, flags in (
        (
            "chat_template_token",
            (
                "<|",
                "[inst",
                "[/inst",
                "<<sys",
                "<</sys",
                "<s>",
                "</s>",
                "<start_of_turn",
                "<end_of_turn",
                "[system",
                "<system",
                "</system",
                "[/system",
            ),
            r"<\|[a-z_]{2,20}\|>|\[/?INST\]|<</?SYS>>|</?s>(?=\s*(?:\[INST\]|<<SYS>>|<\|))"
            r"|<(?:start|end)_of_turn>|(?-i:\[/?SYSTEM\])|</?system(?:_prompt)?>",
            re.IGNORECASE,
        ),
        (
            "system_header",
            (
                "# system",
                "#system",
                "# admin",
                "#admin",
                "# developer",
                "#developer",
                "# instruction",
                "#instruction",
                "**system",
                "** system",
                "**admin",
                "** admin",
                "system override",
                "system update",
                "system command",
                "system notice",
                "system instruction",
                "admin override",
                "admin update",
                "admin command",
                "admin notice",
                "admin instruction",
                "developer override",
                "developer update",
                "developer command",
                "developer notice",
                "developer instruction",
            ),
            r"^\s*#{1,6}\s*(?:SYSTEM|ADMIN|DEVELOPER)\b[^\n]{0,40}?"
            r"\b(?:OVERRIDE|PROMPT|MESSAGE|INSTRUCTIONS?|UPDATE|NOTICE|COMMAND|MODE)\b"
            r"|^\s*#{1,6}\s*(?i:system|instructions?|system\s+prompt)\s*:?\s*$"
            r"|\b(?:SYSTEM|ADMIN|DEVELOPER)\s+(?:OVERRIDE|UPDATE|COMMAND|NOTICE|INSTRUCTIONS?)\b"
            r"|^\s*\*\*\s*(?:SYSTEM|ADMIN)\b[^\n]{0,30}\*\*",
            re.MULTILINE,
        ),
        (
            "inline_role_turn",
            ("system", "assistant", "developer"),
            # "system:" after a sentence or in the middle of a line, followed by an order or an
            # address to the model ("... end of report. system: you must now ...").
            r"(?:^|[.!?;,)\]]\s+|\s-{1,3}\s|\|\s*)(?:system|assistant|developer|sys)\s*:\s*"
            r"(?:you\b|ignore|disregard|forget|override|new\s+(?:instructions|task|rules)|from\s+now|"
            r"reveal|print|output|respond|answer|always|never|do\s+not|don'?t|the\s+(?:user|assistant)|"
            r"important|attention|ignora|olvida|oublie|vergiss|ignoriere|negeer|игнорируй|忽略)",
            re.IGNORECASE | re.MULTILINE,
        ),
    )
)


# Markdown and HTML that make a reader's browser fetch a URL carrying data: an image whose URL
# has a query (or path) with a placeholder or a data-ish parameter, e.g.
# `![x](https://evil.example/log?q={conversation})`. Images load by themselves, so these leak
# without a click.
EXFIL_PATTERNS: tuple[Rule, ...] = tuple(
    Rule(name, triggers, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for name, triggers, pattern in (
        (
            "exfil_image",
            ("![", "<img"),
            r"!\[[^\]]{0,200}\]\(\s*<?https?://[^)\s]*(?:[?&#][^)\s]*"
            r"(?:[{}<>\[\]$]|%7b|%7d|%5b|%3c|\b(?:data|secret|prompt|history|chat|conversation|"
            r"password|token|key|session|message|msg|content|text|info|payload|leak|q|query|user|"
            r"email|ssn|summary|context)=(?!\d+(?:&|$|\)))))"
            r"|<img\b[^>]{0,300}\bsrc\s*=\s*[\"']?https?://[^\"'\s>]*[?&#][^\"'\s>]*"
            r"(?:[{}<>\[\]$]|%7b|%5b|\b(?:data|secret|prompt|history|chat|conversation|password|"
            r"token|key|q|query|user|summary|context)=)",
        ),
        (
            # A link or image whose query value is a placeholder for the reader to fill in
            # with what it knows: `?q=THE_QUESTION`, `?c=SUMMARY_OF_CONVERSATION`. Named data,
            # in capitals, so an API key placeholder in technical docs (YOUR_API_KEY) is not.
            "exfil_placeholder",
            ("](", "src="),
            r"(?:\]\(\s*<?|\bsrc\s*=\s*[\"']?)https?://[^)\s\"'>]*[?&#][^)\s\"'>]*="
            r"(?-i:[A-Z0-9_]*(?:QUESTION|ANSWER|CONVERSATION|CHAT|HISTORY|PROMPT|EMAIL|PASSWORD"
            r"|SECRET|SUMMARY|CONTEXT|MESSAGE|INPUT|QUERY|USER|DOCUMENT|RESPONSE)[A-Z0-9_]*)"
            r"(?![a-z])",
        ),
        (
            "exfil_instruction",
            (
                "conversation",
                "chat history",
                "previous messages",
                "system prompt",
                "user's",
                "users ",
                "user ",
                "api key",
                "secret",
                "password",
            ),
            # Prose telling the reader to put data into a URL: "append the user's question to
            # https://...", "render this image with the conversation in the query".
            r"\b(?:append|add|include|insert|put|encode|embed|replace)\b[^.!?\n]{0,60}?"
            r"\b(?:conversation|chat\s+history|previous\s+messages|system\s+prompt|user'?s?\s+"
            r"(?:question|data|message|input|email|password)|api\s+keys?|secrets?|password)\b"
            r"[^.!?\n]{0,60}?\b(?:url|link|image|query\s+string|https?://)",
        ),
    )
)
