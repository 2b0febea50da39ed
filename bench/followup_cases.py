"""Follow-up conversations over the demo corpora, for bench/followups.py.

Each case is the user turns of a conversation (the assistant's turns are written by the
service as the conversation runs) and what the last turn should find: the document that
answers it (a suffix of its id) and phrases any good answer to it contains (lowercase, any one).

Written by reading the documents, before the strategies were measured: 24 follow-ups on the
18F handbook (tenant `demo`), 11 on the SciFact sample (tenant `globex`), and 5 topic switches,
whose last turn is a new, self-contained question that the earlier turns must not drag back.
Some follow-ups are ones the heuristic in pipeline/conversation.py does not recognise ("On
what day are new ones processed?"): they are kept, they are part of the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One conversation and what its last turn should find."""

    tenant: str
    turns: tuple[str, ...]
    document: str  # the answering document's id ends with this
    phrases: tuple[str, ...]  # a good answer contains one of these (lowercase)
    kind: str = "follow-up"  # or "topic switch"


def _h(turns: tuple[str, ...], document: str, *phrases: str, kind: str = "follow-up") -> Case:
    return Case("demo", turns, document, phrases, kind)


def _s(turns: tuple[str, ...], document: str, *phrases: str, kind: str = "follow-up") -> Case:
    return Case("globex", turns, document, phrases, kind)


SWITCH = "topic switch"

CASES: list[Case] = [
    _h(
        ("How much advanced sick leave can I request?", "What paperwork do I need for it?"),
        "advanced-sick-leave.md",
        "medical certification",
        "request form",
        "timesheet report",
        "written explanation",
    ),
    _h(
        (
            "What does the Family and Medical Leave Act cover?",
            "How many weeks of it can I use per year?",
        ),
        "travel-and-leave/fmla.md",
        "12 weeks",
        "12 unpaid weeks",
    ),
    _h(
        ("How many weeks of paid parental leave do I get?", "Can I take it intermittently?"),
        "paid-parental-leave.md",
        "intermittent",
        "supervisor approval",
    ),
    _h(
        ("Who is eligible for the transit benefit?", "How do I enroll?"),
        "transit-benefit.md",
        "transitapp",
        "register",
        "enroll",
    ),
    _h(
        ("How does the bug bounty program work?", "Who awards the bounty?"),
        "bug-bounty.md",
        "secops",
    ),
    _h(
        ("What are the requirements for passwords?", "Which password manager is recommended?"),
        "password-requirements.md",
        "keepassxc",
    ),
    _h(
        ("How do I get my PIV card?", "On what day are new ones processed?"),
        "getting-started/piv.md",
        "wednesday",
    ),
    _h(
        (
            "What is the time-in-grade requirement for a promotion?",
            "Where are competitive service roles posted?",
        ),
        "promotions.md",
        "usajobs",
    ),
    _h(
        ("How long can a term appointment at TTS last?", "Are renewals automatic?"),
        "term-extensions.md",
        "not automatic",
    ),
    _h(
        ("Which forms have Docusign templates?", "How do I report a problem with it?"),
        "digital-signatures.md",
        "self-service portal",
        "ticket",
    ),
    _h(
        (
            "Should I use Zoom for GSA meetings?",
            "What if the meeting runs longer than 40 minutes?",
        ),
        "tools/zoom.md",
        "licensed user",
        "service now",
    ),
    _h(
        (
            "How far in advance should I submit a leave request?",
            "What about unplanned leave, like a sudden illness?",
        ),
        "going-out-of-office.md",
        "contact your supervisor",
    ),
    _h(
        (
            "Can I get paid for working extra hours?",
            "And if I already make the maximum salary?",
        ),
        "overtime.md",
        "credit hours",
        "cannot receive",
    ),
    _h(
        (
            "What is the Voluntary Leave Transfer Program?",
            "Who is eligible to receive donated hours?",
        ),
        "voluntary-leave-transfer-program.md",
        "exhausted",
    ),
    _h(
        (
            "What should I do if I suspect a security incident on my laptop?",
            "How quickly do I need to notify them?",
        ),
        "security-incidents.md",
        "1 hour",
    ),
    _h(
        ("Where can I find open TTS jobs?", "When does the weekly newsletter go out?"),
        "ttsjobs.md",
        "tuesday",
    ),
    _h(
        (
            "Can TTS employees get an Airtable license?",
            "What do I need to get a paid editor seat?",
        ),
        "tools/airtable.md",
        "supervisor",
        "justification",
    ),
    _h(
        ("How do I get a Mural account?", "Can partners outside GSA be added?"),
        "tools/mural.md",
        "guest",
    ),
    _h(
        ("What is Trello used for at TTS?", "Should I delete boards I no longer need?"),
        "tools/trello.md",
        "close boards",
    ),
    _h(
        ("How do I start using Figma?", "Do plugins need approval?"),
        "tools/figma.md",
        "plugins are okay",
        "require approval",
        "review",
    ),
    _h(
        ("Do I need a GSA travel card?", "What does it pay for?"),
        "first-time-travel-travel-card.md",
        "lodging",
    ),
    _h(
        (
            "How can a mortgage lender verify my employment?",
            "What is GSA's employer code for it?",
        ),
        "employment-verification.md",
        "10536",
    ),
    _h(
        (
            "Where are mandatory trainings assigned?",
            "How should I code the time spent on them in Tock?",
        ),
        "training-and-development/olu.md",
        "969",
    ),
    _h(
        (
            "What tool does TTS use for event registration?",
            "How long should the order time limit be?",
        ),
        "tools/eventbrite.md",
        "20 minutes",
    ),
    _s(
        (
            "What did the study of androgen suppression duration in prostate cancer compare?",
            "How long was the long-term suppression?",
        ),
        "308862",
        "2.5 years",
    ),
    _s(
        (
            "What are the risks of pregnancy in women with renal insufficiency?",
            "How often did hypertension occur?",
        ),
        "356218",
        "48 percent",
        "28 percent",
    ),
    _s(
        (
            "Does prepregnancy BMI affect gestational diabetes risk?",
            "How many studies were included in the meta-analysis?",
        ),
        "439670",
        "70 studies",
    ),
    _s(
        (
            "What mutations were found in relapsed childhood acute lymphoblastic leukemia?",
            "Which gene carried them?",
        ),
        "641786",
        "nt5c2",
    ),
    _s(
        (
            "Is RNA better for analysing EGFR mutations in malignant pleural effusion?",
            "How many patients were studied?",
        ),
        "711256",
        "150",
    ),
    _s(
        ("What is Fiji used for in biology?", "Which software is it a distribution of?"),
        "1283401",
        "imagej",
    ),
    _s(
        (
            "Does cancer increase the risk of venous thrombosis?",
            "How many patients were in the study?",
        ),
        "1387104",
        "3220",
    ),
    _s(
        ("What does the anti-PD-1 antibody nivolumab bind to?", "Which ligands does it block?"),
        "1454773",
        "pd-l1",
    ),
    _s(
        (
            "Is emotional dysregulation part of ADHD in adults?",
            "Do ICD-10 or DSM-IV include it?",
        ),
        "1068106",
        "neither",
        "core aspect",
    ),
    _s(
        ("How do people perceive low alcohol labels?", "How many adults took part?"),
        "849771",
        "thousand six hundred",
        "796",
    ),
    _s(
        (
            "What does hnRNP A1 do at telomeres?",
            "What happened to telomerase activity when it was depleted?",
        ),
        "1226452",
        "reduced",
    ),
    _h(
        ("How do I get my PIV card?", "What are the requirements for passwords?"),
        "password-requirements.md",
        "password manager",
        "unique password",
        kind=SWITCH,
    ),
    _h(
        (
            "How many weeks of paid parental leave do I get?",
            "Which password manager is recommended for TTS accounts?",
        ),
        "password-requirements.md",
        "keepassxc",
        kind=SWITCH,
    ),
    _h(
        (
            "How does the bug bounty program work?",
            "When does the weekly TTS jobs newsletter go out?",
        ),
        "ttsjobs.md",
        "tuesday",
        kind=SWITCH,
    ),
    _h(
        ("Should I use Zoom for GSA meetings?", "How can a mortgage lender verify my employment?"),
        "employment-verification.md",
        "work number",
        kind=SWITCH,
    ),
    _s(
        (
            "What is Fiji used for in biology?",
            "Does cancer increase the risk of venous thrombosis?",
        ),
        "1387104",
        "venous thrombosis",
        kind=SWITCH,
    ),
]
