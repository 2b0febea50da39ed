"""The credential part of the Store contract: API keys, revoked token ids, tenant erasure.

`StoreContract` (test_store_contract.py) inherits these, so SQLite and PostgreSQL both keep them.
Its `store` fixture has the tenants acme and globex.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from tenantrag.backends.ledger import CostEvent
from tenantrag.backends.store import ERASE_CHANGE, ChangeRecords, NewDocument, Store
from tenantrag.backends.store.extras import Feedback
from tenantrag.backends.store.identity import ApiKey
from tenantrag.errors import NotFound, TenantUnavailable
from tenantrag.models import AuditEvent, Chunk, Classification, Tenant, TenantStatus

ACME, GLOBEX = "acme", "globex"


def key(tenant: str = ACME, key_id: str = "k1", **fields: Any) -> ApiKey:
    """A key of `tenant` made now."""
    values: dict[str, Any] = {
        "name": "ci",
        "permissions": ("query",),
        "clearance": Classification.INTERNAL,
        "rate_limit": 10,
        "created_by": "alice",
        "created_at": time.time(),
    }
    values.update(fields)
    return ApiKey(id=key_id, tenant_id=tenant, **values)


def records(action: str, tenant: str | None = ACME) -> ChangeRecords:
    """A change's audit record by alice."""
    return ChangeRecords(AuditEvent(action, "success", tenant, "alice"))


def canary_doc(tenant: str, doc_id: str, canary: str) -> NewDocument:
    """A one-chunk document with `canary` in its text, title and metadata."""
    meta = {"tag": canary}
    chunk = Chunk(tenant, doc_id, 0, f"text {canary}", title=canary, metadata=meta)
    vectors = np.ones((1, 4), dtype=np.float32)
    return NewDocument(doc_id, canary, [chunk], vectors, metadata=meta)


class IdentityContract:
    """Credentials and erasure, as every store keeps them."""

    def test_a_key_is_found_by_id_with_its_hash_and_listed_for_its_tenant_only(
        self, store: Store
    ) -> None:
        """find_api_key returns the key and its hash; only its own tenant lists it."""
        store.create_api_key(key(), "h" * 64, records("api_key_created"))
        found = store.find_api_key("k1")
        assert found is not None
        stored, digest = found
        assert (stored.tenant_id, stored.name, stored.permissions) == (ACME, "ci", ("query",))
        assert (stored.rate_limit, stored.revoked_at, digest) == (10, None, "h" * 64)
        assert [k.id for k in store.list_api_keys(ACME)] == ["k1"]
        assert store.list_api_keys(GLOBEX) == []
        assert store.find_api_key("nope") is None

    def test_a_key_is_recorded_in_the_audit_chain(self, store: Store) -> None:
        """Creating and revoking a key each commit their audit record."""
        store.create_api_key(key(), "h", records("api_key_created"))
        store.revoke_api_key(ACME, "k1", records("api_key_revoked"))
        actions = [r["action"] for r in store.audit_records(ACME, limit=10)]
        assert actions[:2] == ["api_key_revoked", "api_key_created"]

    def test_another_tenants_key_cannot_be_revoked(self, store: Store) -> None:
        """Revoking a key of another tenant is NotFound and leaves it live."""
        store.create_api_key(key(), "h", records("api_key_created"))
        with pytest.raises(NotFound):
            store.revoke_api_key(GLOBEX, "k1", records("api_key_revoked", GLOBEX))
        found = store.find_api_key("k1")
        assert found is not None and found[0].revoked_at is None

    def test_revoking_twice_keeps_the_first_time(self, store: Store) -> None:
        """A second revocation is harmless and does not move revoked_at."""
        store.create_api_key(key(), "h", records("api_key_created"))
        store.revoke_api_key(ACME, "k1", records("api_key_revoked"))
        first = store.find_api_key("k1")
        store.revoke_api_key(ACME, "k1", records("api_key_revoked"))
        again = store.find_api_key("k1")
        assert first is not None and again is not None
        assert first[0].revoked_at is not None and first[0].revoked_at == again[0].revoked_at

    def test_a_key_for_an_unknown_tenant_is_refused(self, store: Store) -> None:
        """A key cannot be made for a tenant that does not exist."""
        with pytest.raises(NotFound):
            store.create_api_key(key("initech"), "h", records("api_key_created", "initech"))

    def test_last_use_only_moves_forward(self, store: Store) -> None:
        """touch_api_key records the latest use."""
        store.create_api_key(key(), "h", records("api_key_created"))
        store.touch_api_key("k1", 200.0)
        store.touch_api_key("k1", 100.0)
        found = store.find_api_key("k1")
        assert found is not None and found[0].last_used_at == 200.0

    def test_revoked_token_ids_until_they_expire(self, store: Store) -> None:
        """A revoked jti is listed while its token could live, then pruned."""
        now = time.time()
        store.revoke_token("jti-1", now + 60, records("token_revoked", None))
        store.revoke_token("jti-old", now - 1, records("token_revoked", None))
        assert store.revoked_token_ids(now=now) == frozenset({"jti-1"})
        assert store.revoked_token_ids(now=now + 120) == frozenset()

    def test_creation_sets_tokens_valid_after_and_suspension_moves_it(self, store: Store) -> None:
        """A tenant counts credentials from its creation; a suspension restarts the count."""
        tenant = store.get_tenant(ACME)
        assert tenant is not None and tenant.tokens_valid_after == tenant.created_at > 0
        time.sleep(0.01)
        store.set_tenant_status(ACME, TenantStatus.SUSPENDED)
        suspended = store.get_tenant(ACME)
        assert suspended is not None and suspended.tokens_valid_after > tenant.created_at
        store.set_tenant_status(ACME, TenantStatus.ACTIVE)
        active = store.get_tenant(ACME)
        assert active is not None and active.tokens_valid_after == suspended.tokens_valid_after

    def test_erasure_removes_content_and_keys_and_keeps_costs_and_audit(self, store: Store) -> None:
        """Erasing acme leaves a tombstone, its cost and audit records, and globex untouched."""
        canary = "canary-erase-7f3a"
        acme = store.get_tenant(ACME)
        globex = store.get_tenant(GLOBEX)
        assert acme is not None and globex is not None
        store.put_documents(acme, [canary_doc(ACME, "d1", canary)])
        store.put_documents(globex, [canary_doc(GLOBEX, "g1", "globex-stays")])
        store.create_api_key(key(), "h", records("api_key_created"))
        store.record([CostEvent(ACME, "embedding", 0.5, {"why": "test"}, "m", 3)])
        before = len(store.audit_records(ACME, limit=1000))
        erased = store.erase_tenant(ACME, records("tenant_erased"))
        assert erased.removed["documents"] == 1 and erased.removed["chunks"] == 1
        assert erased.removed["api_keys"] == 1
        tombstone = store.get_tenant(ACME)
        assert tombstone is not None and tombstone.status is TenantStatus.DELETED
        assert store.usage(ACME).documents == 0 and store.list_api_keys(ACME) == []
        assert store.find_api_key("k1") is None
        assert store.latest_seq(ACME) == 0
        assert store.usage(GLOBEX).documents == 1
        assert len(store.audit_records(ACME, limit=1000)) == before + 1
        assert store.totals(ACME, start=_today(), end=_today()).total.amount_usd > 0
        last = store.changes_after(0, limit=1000)[-1]
        assert (last.tenant_id, last.kind) == (ACME, ERASE_CHANGE)

    def test_an_erased_tenant_stays_erased(self, store: Store) -> None:
        """No document, key, status change or recreation brings an erased tenant back."""
        acme = store.get_tenant(ACME)
        assert acme is not None
        store.erase_tenant(ACME, records("tenant_erased"))
        with pytest.raises(TenantUnavailable):
            store.put_documents(acme, [canary_doc(ACME, "d1", "late")])
        with pytest.raises(NotFound):
            store.create_api_key(key(), "h", records("api_key_created"))
        with pytest.raises(NotFound):
            store.set_tenant_status(ACME, TenantStatus.ACTIVE)
        with pytest.raises(NotFound):
            store.update_tenant(ACME, rate_limit=5)
        with pytest.raises(ValueError):
            store.create_tenant(Tenant(id=ACME))
        store.erase_tenant(ACME, records("tenant_erased"))  # again: harmless
        with pytest.raises(NotFound):
            store.erase_tenant("initech", records("tenant_erased", "initech"))

    def test_erasure_removes_feedback(self, store: Store) -> None:
        """A rating's comment is the tenant's content: erasure removes it."""
        store.append_audit(
            [AuditEvent("query", "success", ACME, "alice", _ids("req-1"))], durable=True
        )
        store.put_feedback(Feedback(ACME, "req-1", "alice", "up", "canary comment"))
        erased = store.erase_tenant(ACME, records("tenant_erased"))
        assert erased.removed["feedback"] == 1
        assert store.feedback_between(ACME, start=0, end=time.time() + 10) == []


def _today() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).date()


def _ids(request_id: str) -> Any:
    from tenantrag.models import RequestIds

    return RequestIds(request_id=request_id)
