"""Signed anchors of the audit chain: its head, signed with Ed25519, kept away from the chain.

The chain alone shows an edited, deleted or reordered record, but not records cut from its end
or a suffix rewritten with fresh hashes: both leave a valid chain. An anchor is the head
(seq, hash) signed with a key that is not stored beside the chain (TENANTRAG_AUDIT__ANCHOR_KEY,
from the environment or a secret store), so whoever can rewrite the chain cannot make a new one.
`tenantrag audit verify --anchor FILE` then requires the chain to reach the anchored seq with
the anchored hash: deletion, rehashing and truncation up to that head show.

Why Ed25519 rather than HMAC-SHA256: an HMAC key verifies and signs alike, so everyone who
checks an anchor (an auditor, a monitoring job, every node) could also forge one. With Ed25519
only the service holds the private key; verifiers get the public key
(TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY), which may sit anywhere, even beside the log. Signing
takes well under a millisecond, once every few seconds; `cryptography` (already required by
PyJWT[crypto]) does it.

An anchor is one line of JSON; the signature covers the canonical JSON (sorted keys, no
spaces) of every other field, `format` naming what it is so no other signed text passes for one:

    {"format": "tenantrag-audit-anchor/1", "seq": 42, "hash": "<64 hex>", "signed_at":
     "<RFC 3339>", "node": "<host/folder>", "key_id": "<16 hex>", "signature": "<base64>"}
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tenantrag.backends.store.chain import Head

FORMAT: Final = "tenantrag-audit-anchor/1"
FIELDS: Final = frozenset({"format", "seq", "hash", "signed_at", "node", "key_id", "signature"})
KEY_BYTES: Final = 32


class AnchorError(ValueError):
    """An anchor that cannot be trusted: unreadable, signed by another key, or forged."""


class ForeignKey(AnchorError):
    """An anchor signed by another key than the configured one (e.g. before a rotation)."""


def _decode_key(text: str, what: str) -> bytes:
    """32 raw bytes from base64 (standard or URL-safe, padding optional)."""
    cleaned = text.strip()
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise ValueError(
            f"{what} must be base64 of {KEY_BYTES} bytes (`tenantrag audit keygen` makes a pair)"
        )
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _signed_bytes(fields: dict[str, Any]) -> bytes:
    body = {key: value for key, value in fields.items() if key != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True, slots=True)
class Anchor:
    """A verified anchor: the head it signs, when, and by which node."""

    head: Head
    signed_at: str
    node: str
    text: str  # the line exactly as written and signed


class AnchorVerifier:
    """Checks anchors against one Ed25519 public key."""

    def __init__(self, public_key: str) -> None:
        self._raw = _decode_key(public_key, "TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY")
        self._key = Ed25519PublicKey.from_public_bytes(self._raw)
        self.key_id = hashlib.sha256(self._raw).hexdigest()[:16]

    @property
    def public_key(self) -> str:
        """The public key, base64."""
        return _b64(self._raw)

    def check(self, text: str) -> Anchor:
        """The anchor `text` signs; AnchorError if it is not one this key signed."""
        try:
            fields = json.loads(text)
        except ValueError:
            raise AnchorError("the anchor is not JSON") from None
        if not isinstance(fields, dict) or fields.keys() != FIELDS or fields["format"] != FORMAT:
            raise AnchorError(f"the anchor is not a {FORMAT} anchor")
        if fields["key_id"] != self.key_id:
            raise ForeignKey(
                f"the anchor was signed by key {fields['key_id']!s:.16}, not {self.key_id}"
                " (the configured public key)"
            )
        try:
            signature = base64.b64decode(str(fields["signature"]), validate=True)
            self._key.verify(signature, _signed_bytes(fields))
        except (InvalidSignature, binascii.Error, ValueError):
            raise AnchorError(
                "the anchor's signature does not verify: it was forged or edited"
            ) from None
        seq, digest = fields["seq"], fields["hash"]
        if not isinstance(seq, int) or seq < 0 or not isinstance(digest, str) or len(digest) != 64:
            raise AnchorError("the anchor's seq or hash is malformed")
        return Anchor(Head(seq, digest), str(fields["signed_at"]), str(fields["node"]), text)


class AnchorSigner:
    """Signs heads with the Ed25519 private key (TENANTRAG_AUDIT__ANCHOR_KEY)."""

    def __init__(self, private_key: str) -> None:
        seed = _decode_key(private_key, "TENANTRAG_AUDIT__ANCHOR_KEY")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.verifier = AnchorVerifier(_b64(public))

    def sign(self, head: Head, node: str, *, now: datetime | None = None) -> Anchor:
        """An anchor of `head`, signed now by `node`."""
        moment = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
        fields: dict[str, Any] = {
            "format": FORMAT,
            "seq": head.seq,
            "hash": head.hash,
            "signed_at": moment.replace("+00:00", "Z"),
            "node": node,
            "key_id": self.verifier.key_id,
        }
        fields["signature"] = _b64(self._key.sign(_signed_bytes(fields)))
        text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
        return Anchor(head, fields["signed_at"], node, text)


def generate_key_pair() -> tuple[str, str]:
    """A new (private key, public key), base64, for TENANTRAG_AUDIT__ANCHOR_KEY and _PUBLIC_KEY."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return _b64(seed), _b64(public)


# -- the anchor file ------------------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold `<path>.lock` exclusively: the workers of one node take turns writing the file."""
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_anchor_file(path: Path) -> str:
    """The anchor line in `path`; OSError when it cannot be read."""
    return path.read_text(encoding="utf-8").strip()


def write_anchor_file(path: Path, anchor: Anchor, verifier: AnchorVerifier) -> bool:
    """Replace the anchor at `path` with `anchor`, atomically (fsynced, then renamed).

    An anchor there of a higher seq that this key signed is kept (False): a head never goes
    back, and one ahead of the chain means records were lost, which verify must still see.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if path.exists():
            try:
                current = verifier.check(read_anchor_file(path))
            except (AnchorError, OSError):
                current = None  # unreadable or foreign: ours replaces it
            if current is not None and current.head.seq > anchor.head.seq:
                return False
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(anchor.text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return True


# -- what `tenantrag audit verify` trusts ---------------------------------------------------------


@dataclass
class TrustedHeads:
    """The heads a chain must hold, what could not be checked, and why it is broken already."""

    heads: list[Head]
    notes: list[str]
    problem: str | None = None


def trusted_heads(
    verifier: AnchorVerifier | None, file: Path, *, explicit: bool, kept: Sequence[str] = ()
) -> TrustedHeads:
    """The signed heads to check a chain against: the anchor `file`, and the store's `kept` ones.

    An anchor that does not verify (edited, forged) is a problem; so is a missing `file` given
    explicitly. Without a verifier nothing is trusted: the notes say what went unchecked.
    Anchors the store keeps that another key signed (before a rotation) are skipped, noted.
    """
    found = TrustedHeads([], [])
    if verifier is None:
        found.notes.append(
            "no anchor key configured (TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY or _ANCHOR_KEY):"
            " only the chain's links were checked; records cut from its end would not show"
        )
        return found
    if file.exists():
        try:
            anchor = verifier.check(read_anchor_file(file))
        except (AnchorError, OSError) as exc:
            found.problem = f"the anchor {file} cannot be trusted: {exc}"
            return found
        found.heads.append(anchor.head)
        found.notes.append(
            f"anchor {file}: seq {anchor.head.seq}, signed {anchor.signed_at} by {anchor.node}"
        )
    elif explicit:
        found.problem = f"no anchor at {file}"
        return found
    else:
        found.notes.append(f"no anchor at {file}: records cut from the end would not show")
    for text in kept:
        try:
            found.heads.append(verifier.check(text).head)
        except ForeignKey as exc:
            found.notes.append(f"a kept anchor was skipped: {exc}")
        except AnchorError as exc:
            found.problem = f"an anchor the store keeps cannot be trusted: {exc}"
            return found
    if kept:
        found.notes.append(f"{len(kept)} anchors kept in the store (one per node) were checked")
    return found


def verifier_from(private_key: str | None, public_key: str | None) -> AnchorVerifier | None:
    """The verifier the settings give: the public key, else the private key's.

    ValueError when both are set and do not belong together.
    """
    verifier = AnchorVerifier(public_key) if public_key else None
    if private_key:
        own = AnchorSigner(private_key).verifier
        if verifier is not None and verifier.key_id != own.key_id:
            raise ValueError(
                "TENANTRAG_AUDIT__ANCHOR_PUBLIC_KEY is not the public half of _ANCHOR_KEY"
            )
        verifier = verifier or own
    return verifier
