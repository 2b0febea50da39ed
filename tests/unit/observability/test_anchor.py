"""Signed anchors of the audit chain: Ed25519 signatures, the anchor file, what verify trusts."""

from __future__ import annotations

import base64
import json
import os
import threading
from pathlib import Path

import pytest

from tenantrag.backends.store.chain import ZERO_HASH, Head
from tenantrag.backends.store.sqlite import SQLiteStore
from tenantrag.models import AuditEvent
from tenantrag.observability.anchor import (
    AnchorError,
    AnchorSigner,
    AnchorVerifier,
    ForeignKey,
    generate_key_pair,
    read_anchor_file,
    trusted_heads,
    verifier_from,
    write_anchor_file,
)
from tenantrag.observability.audit import verify_records
from tenantrag.observability.housekeeping import Anchorer, Periodic, node_name

HEAD = Head(42, "ab" * 32)


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    """One key pair for the module (private, public)."""
    return generate_key_pair()


@pytest.fixture
def signer(keys: tuple[str, str]) -> AnchorSigner:
    return AnchorSigner(keys[0])


def edited(text: str, **changes: object) -> str:
    fields = json.loads(text)
    fields.update(changes)
    return json.dumps(fields, separators=(",", ":"))


class TestSignatures:
    def test_a_signed_head_verifies_with_the_public_key_alone(
        self, keys: tuple[str, str], signer: AnchorSigner
    ) -> None:
        """The public key checks what the private key signed, and names the same head."""
        anchor = signer.sign(HEAD, "node-1")
        checked = AnchorVerifier(keys[1]).check(anchor.text)
        assert (checked.head, checked.node) == (HEAD, "node-1")
        assert checked.signed_at.endswith("Z")

    @pytest.mark.parametrize(
        "change",
        [{"seq": 41}, {"hash": "cd" * 32}, {"node": "elsewhere"}, {"signed_at": "2099-01-01"}],
    )
    def test_any_edit_breaks_the_signature(
        self, signer: AnchorSigner, change: dict[str, object]
    ) -> None:
        """Moving the head back, naming another hash, node or time: the signature fails."""
        text = edited(signer.sign(HEAD, "n").text, **change)
        with pytest.raises(AnchorError, match="does not verify"):
            signer.verifier.check(text)

    def test_another_keys_anchor_is_refused_as_foreign(self, signer: AnchorSigner) -> None:
        """An anchor an attacker signs with their own key names another key id."""
        theirs = AnchorSigner(generate_key_pair()[0]).sign(HEAD, "n")
        with pytest.raises(ForeignKey):
            signer.verifier.check(theirs.text)
        # ...and claiming our key id does not help: the signature is still theirs.
        with pytest.raises(AnchorError, match="does not verify"):
            signer.verifier.check(edited(theirs.text, key_id=signer.verifier.key_id))

    @pytest.mark.parametrize("text", ["", "not json", "[]", '{"format": "other"}'])
    def test_what_is_not_an_anchor_is_refused(self, signer: AnchorSigner, text: str) -> None:
        """Garbage and other JSON are refused with AnchorError, never a crash."""
        with pytest.raises(AnchorError):
            signer.verifier.check(text)

    @pytest.mark.parametrize("key", ["", "short", base64.b64encode(b"x" * 31).decode(), "!" * 44])
    def test_a_malformed_key_is_a_clear_error(self, key: str) -> None:
        """A key that is not base64 of 32 bytes names the setting and how to make one."""
        with pytest.raises(ValueError, match="audit keygen"):
            AnchorSigner(key)
        with pytest.raises(ValueError, match="ANCHOR_PUBLIC_KEY"):
            AnchorVerifier(key)

    def test_url_safe_and_unpadded_keys_are_accepted(self, keys: tuple[str, str]) -> None:
        """Keys pasted in the URL-safe alphabet or without padding read the same."""
        raw = base64.b64decode(keys[1])
        loose = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        assert AnchorVerifier(loose).key_id == AnchorVerifier(keys[1]).key_id

    def test_the_settings_give_one_verifier(self, keys: tuple[str, str]) -> None:
        """Public key, private key, both (if they match), or none."""
        private, public = keys
        assert verifier_from(None, None) is None
        expected = AnchorVerifier(public).key_id
        for pair in [(private, None), (None, public), (private, public)]:
            verifier = verifier_from(*pair)
            assert verifier is not None and verifier.key_id == expected
        with pytest.raises(ValueError, match="not the public half"):
            verifier_from(private, generate_key_pair()[1])


class TestAnchorFile:
    def test_written_atomically_and_read_back(self, signer: AnchorSigner, tmp_path: Path) -> None:
        """The file holds one line, the anchor as signed; no temporary file stays behind."""
        path = tmp_path / "anchors" / "audit.anchor"
        assert write_anchor_file(path, signer.sign(HEAD, "n"), signer.verifier)
        assert signer.verifier.check(read_anchor_file(path)).head == HEAD
        assert sorted(p.name for p in path.parent.iterdir()) == [
            "audit.anchor",
            "audit.anchor.lock",
        ]

    def test_a_head_never_goes_back(self, signer: AnchorSigner, tmp_path: Path) -> None:
        """A lower seq does not replace a higher one this key signed; a forged file is replaced."""
        path = tmp_path / "audit.anchor"
        write_anchor_file(path, signer.sign(HEAD, "n"), signer.verifier)
        older = signer.sign(Head(41, "cd" * 32), "n")
        assert not write_anchor_file(path, older, signer.verifier)
        assert signer.verifier.check(read_anchor_file(path)).head == HEAD
        path.write_text(edited(read_anchor_file(path), seq=99))
        assert write_anchor_file(path, older, signer.verifier)
        assert signer.verifier.check(read_anchor_file(path)).head.seq == 41

    def test_workers_writing_at_once_keep_the_highest(
        self, signer: AnchorSigner, tmp_path: Path
    ) -> None:
        """Eight threads writing heads 1..8 at once leave head 8, a whole line."""
        path = tmp_path / "audit.anchor"
        anchors = [signer.sign(Head(n, f"{n:064x}"), "n") for n in range(1, 9)]
        threads = [
            threading.Thread(target=write_anchor_file, args=(path, a, signer.verifier))
            for a in anchors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert signer.verifier.check(read_anchor_file(path)).head.seq == 8


class TestTrustedHeads:
    def test_without_a_key_nothing_is_trusted_and_that_is_said(self, tmp_path: Path) -> None:
        """No key: no heads, no problem, a note that truncation would not show."""
        found = trusted_heads(None, tmp_path / "audit.anchor", explicit=False)
        assert (found.heads, found.problem) == ([], None)
        assert "only the chain's links were checked" in found.notes[0]

    def test_a_missing_default_anchor_is_noted_a_missing_given_one_is_a_problem(
        self, signer: AnchorSigner, tmp_path: Path
    ) -> None:
        """The default file may not exist yet (noted); a file named on the command line must."""
        gone = tmp_path / "audit.anchor"
        assert trusted_heads(signer.verifier, gone, explicit=False).problem is None
        assert trusted_heads(signer.verifier, gone, explicit=True).problem == f"no anchor at {gone}"

    def test_the_file_and_the_kept_anchors_are_all_checked(
        self, signer: AnchorSigner, tmp_path: Path
    ) -> None:
        """Good anchors become heads; a foreign kept one is skipped; a forged one is a problem."""
        path = tmp_path / "audit.anchor"
        write_anchor_file(path, signer.sign(HEAD, "a"), signer.verifier)
        kept = [signer.sign(Head(7, "ef" * 32), "b").text]
        foreign = AnchorSigner(generate_key_pair()[0]).sign(Head(9, "00" * 32), "c").text
        found = trusted_heads(signer.verifier, path, explicit=True, kept=[*kept, foreign])
        assert (found.heads, found.problem) == ([HEAD, Head(7, "ef" * 32)], None)
        assert any("skipped" in note for note in found.notes)
        forged = edited(kept[0], seq=8)
        problem = trusted_heads(signer.verifier, path, explicit=True, kept=[forged]).problem
        assert problem is not None and "cannot be trusted" in problem
        path.write_text("garbage\n")
        problem = trusted_heads(signer.verifier, path, explicit=False).problem
        assert problem is not None and str(path) in problem


class TestAnchorer:
    def test_signs_the_store_head_into_the_store_and_the_file(
        self, signer: AnchorSigner, tmp_path: Path
    ) -> None:
        """Each sign() anchors the current head; the store keeps the node's newest."""
        store = SQLiteStore(tmp_path / "tenantrag.db")
        store.open()
        path = tmp_path / "elsewhere" / "audit.anchor"
        anchorer = Anchorer(store, signer, path, node_name(tmp_path))
        assert anchorer.sign().head == Head(0, ZERO_HASH)
        store.append_audit([AuditEvent("search", "success", "acme", "u1")] * 3)
        anchor = anchorer.sign()
        assert anchor.head == store.audit_head()
        assert signer.verifier.check(read_anchor_file(path)).head == anchor.head
        assert store.audit_anchors() == [anchor.text]
        heads = trusted_heads(signer.verifier, path, explicit=True, kept=store.audit_anchors())
        assert verify_records(store.iter_audit(), anchors=heads.heads).ok
        store.close()

    def test_periodic_runs_chores_and_its_finals_once_at_close(self) -> None:
        """Chores repeat on the interval; a failing one does not stop the others."""
        calls: list[str] = []
        ran = threading.Event()

        def fail() -> None:
            raise RuntimeError("down")

        def work() -> None:
            calls.append("work")
            if calls.count("work") >= 2:
                ran.set()

        periodic = Periodic(
            0.01, [("fail", fail), ("work", work)], [("final", lambda: calls.append("final"))]
        )
        periodic.start()
        assert ran.wait(5)
        periodic.close()
        assert calls[-1] == "final" and calls.count("final") == 1


def test_node_names_differ_per_data_folder(tmp_path: Path) -> None:
    """Two nodes on one host (two data folders) keep two anchors."""
    one, two = node_name(tmp_path / "a"), node_name(tmp_path / "b")
    assert one != two and one.split("/")[0] == two.split("/")[0] == os.uname().nodename[:64]
