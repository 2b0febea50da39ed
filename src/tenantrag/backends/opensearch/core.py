"""The shared machinery of the OpenSearch indexes: one client, two shared indexes.

An apply is: delete_by_query of the replaced documents, a bulk write of the new chunks (ids
`<tenant>:<rowid>`, so a replay overwrites rather than duplicates), then the tenant's
`__seq__:<tenant>` record written with refresh=true. Automatic refresh is off, so that one
refresh of the tenant's shard shows the deletes, the chunks and the seq together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any, Literal

import structlog
from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError, RequestError

from tenantrag.backends.keyword.tantivy import raw_term
from tenantrag.backends.opensearch.mappings import Layout
from tenantrag.backends.opensearch.transport import (
    MISSING_INDEX,
    BulkWriter,
    Json,
    Operation,
    translated,
)
from tenantrag.backends.opensearch.writes import check_by_query
from tenantrag.errors import UpstreamError, UpstreamTimeout

Role = Literal["keyword", "vector"]
ROLES: tuple[Role, Role] = ("keyword", "vector")
DELETE_BATCH = 10_000  # document ids per delete_by_query

log = structlog.get_logger(__name__)


def seq_id(tenant: str) -> str:
    """The id of the record holding the tenant's applied seq (no chunk id starts with "__")."""
    return f"__seq__:{tenant}"


def chunk_id(tenant: str, rowid: int) -> str:
    """A chunk's document id: stable across replays, unique across tenants."""
    return f"{tenant}:{rowid}"


class IndexCore:
    """The client and the two shared indexes; OpenSearchIndex adds the per-role adapters."""

    def __init__(
        self,
        client: OpenSearch,
        layout: Layout,
        writer: BulkWriter,
        *,
        timeout_s: float,
        write_timeout_s: float,
        ef_search: int,
    ) -> None:
        self.client, self.layout, self.writer = client, layout, writer
        self.timeout_s, self.write_timeout_s, self.ef_search = timeout_s, write_timeout_s, ef_search
        self._ready: set[str] = set()
        self._ready_lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        """The width of the vectors the vector index holds."""
        return self.layout.dimensions

    def ensure_indexes(self) -> None:
        """Create the templates and indexes if missing and check the vector width (idempotent)."""
        for role in ROLES:
            self.ensure(role)

    def ping(self) -> bool:
        """True when the cluster answers."""
        try:
            with translated("a ping"):
                return bool(self.client.ping())
        except UpstreamError:
            return False

    def delete_indexes(self) -> None:
        """Delete both indexes and their templates, for every tenant (teardown, not routine)."""
        indices = self.client.indices
        for role in ROLES:
            found = self.request(
                "finding the indexes",
                partial(indices.get_alias, name=self.layout.alias(role)),
                missing=None,  # its 404 body is {"error": "alias [...] missing"}
            )
            for name in found or {}:
                self.request("deleting an index", partial(indices.delete, index=name))
            self.request(
                "deleting a template",
                partial(indices.delete_index_template, name=self.layout.template_name(role)),
                missing=("resource_not_found_exception", "index_template_missing_exception"),
            )
            with self._ready_lock:
                self._ready.discard(role)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    # -- shared by the adapters ----------------------------------------------------------------

    def request(
        self,
        action: str,
        call: Callable[[], Any],
        *,
        missing: Collection[str] | None = (MISSING_INDEX,),
    ) -> Json | None:
        """`call()` with errors translated.

        Returns None for a 404 whose error type is in `missing` (any 404 when it is None).
        """
        with translated(action):
            try:
                result: Json | None = call()
            except NotFoundError as exc:
                if missing is None or exc.error in missing:
                    return None
                raise
        return result

    def ensure(self, role: Role) -> None:
        """Create `role`'s template, index and alias unless present; check the vector width."""
        if role in self._ready:
            return
        with self._ready_lock:
            if role in self._ready:
                return
            alias = self.layout.alias(role)
            with translated("checking the index"):
                exists = bool(self.client.indices.exists(index=alias))
            if exists:
                self._check_mapping(role)
            else:
                self._create(role)
            self._ready.add(role)

    def replace(
        self,
        role: Role,
        tenant: str,
        replace_documents: Sequence[str],
        operations: Sequence[Operation],
        seq: int,
    ) -> None:
        """Delete the replaced documents, write `operations`, then record `seq` and refresh."""
        self.ensure(role)
        alias = self.layout.alias(role)
        ids = [raw_term(d) for d in dict.fromkeys(replace_documents)]
        for start in range(0, len(ids), DELETE_BATCH):
            scope = [
                {"term": {"tenant_id": tenant}},
                {"terms": {"document_id": ids[start : start + DELETE_BATCH]}},
            ]
            with translated("deleting replaced documents"):
                response = self.client.delete_by_query(
                    index=alias,
                    body={"query": {"bool": {"filter": scope}}},
                    routing=tenant,
                    conflicts="proceed",
                    refresh=False,
                    request_timeout=self.write_timeout_s,
                )
            check_by_query(response, "deleting replaced documents")
        self.writer.write(operations, index=alias, routing=tenant)
        with translated("recording the applied seq"):
            recorded = self.client.index(
                index=alias,
                id=seq_id(tenant),
                body={"tenant_id": tenant, "seq": seq},
                routing=tenant,
                refresh=True,
                require_alias=True,
                request_timeout=self.write_timeout_s,
            )
        if recorded.get("result") not in ("created", "updated"):
            raise UpstreamError(f"OpenSearch did not record the seq: {recorded.get('result')!r}")

    def search(self, role: Role, tenant: str, body: Json) -> list[tuple[int, float]]:
        """(rowid, score) of each hit of `body` in the tenant, best first; [] if no index yet."""
        response = self.request(
            f"a {role} search",
            lambda: self.client.search(
                index=self.layout.alias(role),
                body=body,
                routing=tenant,
                request_timeout=self.timeout_s,
            ),
        )
        if response is None:
            return []
        if response.get("timed_out"):
            raise UpstreamTimeout(f"OpenSearch timed out on a {role} search")
        shards = response.get("_shards", {})
        if shards.get("failed"):
            raise UpstreamError(
                f"a {role} search failed on {shards['failed']} of {shards.get('total')} shards"
            )
        prefix = f"{tenant}:"
        found = []
        for hit in response.get("hits", {}).get("hits", []):
            doc_id = str(hit["_id"])
            rowid = doc_id[len(prefix) :]
            if not doc_id.startswith(prefix) or not rowid.isdigit():
                # The filters make this impossible; the _id is checked all the same.
                log.error("opensearch_foreign_hit", tenant_id=tenant, doc_id=doc_id, role=role)
                continue
            found.append((int(rowid), float(hit["_score"])))
        return sorted(found, key=lambda pair: (-pair[1], pair[0]))

    def applied_seq(self, role: Role, tenant: str) -> int:
        """The tenant's recorded seq as of the last refresh; 0 when there is none."""
        alias = self.layout.alias(role)
        with translated("reading the applied seq"):
            try:
                # realtime=false reads as searches do: the seq shows when the data does.
                record = self.client.get(
                    index=alias,
                    id=seq_id(tenant),
                    routing=tenant,
                    realtime=False,
                    request_timeout=self.timeout_s,
                )
            except NotFoundError:
                return 0  # no record, or no index yet
        return int(record.get("_source", {}).get("seq", 0))

    def drop_tenant(self, role: Role, tenant: str) -> None:
        """Delete every document of the tenant, its seq record included, and refresh."""
        response = self.request(
            "dropping a tenant",
            lambda: self.client.delete_by_query(
                index=self.layout.alias(role),
                body={"query": {"bool": {"filter": [{"term": {"tenant_id": tenant}}]}}},
                routing=tenant,
                conflicts="proceed",
                refresh=True,
                request_timeout=self.write_timeout_s,
            ),
        )
        if response is not None:
            check_by_query(response, "dropping a tenant")

    # -- internals -----------------------------------------------------------------------------

    def _create(self, role: Role) -> None:
        alias = self.layout.alias(role)
        with translated("creating the index template"):
            self.client.indices.put_index_template(
                name=self.layout.template_name(role), body=self.layout.template(role)
            )
        with translated("creating the index"):
            try:
                self.client.indices.create(
                    index=self.layout.backing_index(role),
                    body={"aliases": {alias: {"is_write_index": True}}},
                )
            except RequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise  # another process creating it at the same moment is fine

    def _check_mapping(self, role: Role) -> None:
        if role != "vector":
            return
        mappings = self.request(
            "reading the mapping",
            lambda: self.client.indices.get_mapping(index=self.layout.alias(role)),
        )
        for name, entry in (mappings or {}).items():
            field = entry.get("mappings", {}).get("properties", {}).get("embedding", {})
            if field.get("dimension") != self.dimensions:
                raise UpstreamError(
                    f"OpenSearch index {name} holds {field.get('dimension')}-dimensional "
                    f"vectors but this service embeds {self.dimensions}; reindex or change "
                    "the index prefix"
                )
