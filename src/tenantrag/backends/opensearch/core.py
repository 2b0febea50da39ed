"""The shared machinery of the OpenSearch indexes: the client, index creation, the applies.

Every apply is three steps: delete the replaced documents, bulk-write the new chunks, refresh.

Chunk ids are `<tenant>:<rowid>`, so a replay overwrites rather than duplicates. Automatic
refresh is off, so nothing an apply writes is searchable before its explicit refresh.

delete_by_query reads the last *refreshed* view and deletes each hit with if_seq_no (a hit changed
or deleted since that refresh is a version conflict, counted with conflicts=proceed). After a
failed apply whose deletes were never refreshed, the replay meets such conflicts on every chunk
it deleted before; it then refreshes and deletes again, which finds only what is left.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from functools import partial
from typing import Any

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

DELETE_BATCH = 10_000  # document ids per delete_by_query
DELETE_ROUNDS = 3  # delete_by_query attempts while it reports version conflicts
# Names that may not exist yet are skipped rather than refused (a level index is made when its
# first chunk arrives; a search or delete before then simply finds nothing there).
LENIENT = {"ignore_unavailable": "true", "allow_no_indices": "true"}

log = structlog.get_logger(__name__)


def seq_id(tenant: str) -> str:
    """The id of the vector index's record of the tenant's seq (no chunk id starts with "__")."""
    return f"__seq__:{tenant}"


def chunk_id(tenant: str, rowid: int) -> str:
    """A chunk's document id: stable across replays, unique across tenants."""
    return f"{tenant}:{rowid}"


class IndexCore:
    """The client and what both adapters share; OpenSearchIndex adds the adapters."""

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
        self._ready: set[str] = set()  # aliases this process created or saw
        self._ready_lock = threading.Lock()

    @property
    def dimensions(self) -> int:
        """The width of the vectors the vector index holds."""
        return self.layout.dimensions

    def ensure_indexes(self) -> None:
        """Create the shared indexes if missing and check the vector width (idempotent).

        A tenant's keyword indexes are made by its first write of each level.
        """
        self.ensure(self.layout.state_alias, self.layout.state_body)
        self.ensure(self.layout.vector_alias, self.layout.vector_body, check=self.check_width)

    def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the cluster answers and accepts our credentials, within `timeout_s`.

        opensearch-py's ping is a HEAD / that returns False on any error status (401 for a
        wrong password); an unreachable node or a certificate that fails to verify raises.
        """
        try:
            with translated("a ping"):
                return bool(self.client.ping(request_timeout=timeout_s))
        except UpstreamError:
            return False

    def delete_indexes(self) -> None:
        """Delete every index of this prefix, for every tenant (teardown, not routine)."""
        patterns = [
            f"{self.layout.prefix}-keyword.*",
            self.layout.state_alias,
            self.layout.vector_alias,
        ]
        found = self.request(
            "finding the indexes",
            lambda: self.client.indices.get(index=",".join(patterns), params=LENIENT),
        )
        for name in sorted(found or {}):
            self.request("deleting an index", partial(self.client.indices.delete, index=name))
        with self._ready_lock:
            self._ready.clear()

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
        """`call()` with errors translated; None for a 404 whose error type is in `missing`.

        Any 404 counts when `missing` is None.
        """
        with translated(action):
            try:
                result: Json | None = call()
            except NotFoundError as exc:
                if missing is None or exc.error in missing:
                    return None
                raise
        return result

    def ensure(
        self,
        alias: str,
        body: Callable[[], Json],
        *,
        check: Callable[[str], None] | None = None,
    ) -> None:
        """Create the index behind `alias` from `body()` unless it exists, else `check` it."""
        if alias in self._ready:
            return
        with self._ready_lock:
            if alias in self._ready:
                return
            with translated("checking an index"):
                exists = bool(self.client.indices.exists(index=alias))
            if exists and check is not None:
                check(alias)
            elif not exists:
                self._create(alias, body())
            self._ready.add(alias)

    def forget(self, aliases: Iterable[str]) -> None:
        """Stop assuming `aliases` exist (after a failed write: one may have been deleted)."""
        with self._ready_lock:
            self._ready.difference_update(aliases)

    def refresh(self, indexes: Sequence[str]) -> None:
        """Make every write to `indexes` searchable (missing ones skipped)."""
        response = self.request(
            "refreshing",
            lambda: self.client.indices.refresh(
                index=",".join(indexes), params=LENIENT | {"request_timeout": self.write_timeout_s}
            ),
        )
        shards = (response or {}).get("_shards", {})
        if shards.get("failed"):
            raise UpstreamError(f"OpenSearch failed to refresh {shards['failed']} shards")

    def delete_documents(
        self, indexes: Sequence[str], tenant: str, documents: Sequence[str]
    ) -> None:
        """Delete every chunk of `documents` in `indexes`; refresh and retry on conflicts."""
        ids = [raw_term(d) for d in dict.fromkeys(documents)]
        for start in range(0, len(ids), DELETE_BATCH):
            scope: list[Json] = [
                {"term": {"tenant_id": tenant}},
                {"terms": {"document_id": ids[start : start + DELETE_BATCH]}},
            ]
            for attempt in range(1, DELETE_ROUNDS + 1):
                conflicts = self._delete_by_query(indexes, tenant, scope)
                if not conflicts:
                    break
                if attempt == DELETE_ROUNDS:
                    raise UpstreamError(
                        f"OpenSearch reported {conflicts} version conflicts deleting replaced "
                        f"documents {DELETE_ROUNDS} times; the next replay will retry"
                    )
                log.info("opensearch_delete_conflicts", tenant_id=tenant, conflicts=conflicts)
                # The conflicting chunks changed since the last refresh (typically: deleted by
                # an apply that failed before refreshing). Refresh, then delete what is left.
                self.refresh(indexes)

    def write(self, operations: Sequence[Operation], tenant: str, index: str | None) -> None:
        """Bulk-write `operations` (items name their index when `index` is None)."""
        self.writer.write(operations, index=index, routing=tenant)

    def record(self, index: str, doc_id: str, tenant: str, seq: int) -> None:
        """Write the tenant's seq record with refresh=true."""
        with translated("recording the applied seq"):
            recorded = self.client.index(
                index=index,
                id=doc_id,
                body={"tenant_id": tenant, "seq": seq},
                routing=tenant,
                refresh=True,
                require_alias=True,
                request_timeout=self.write_timeout_s,
            )
        if recorded.get("result") not in ("created", "updated"):
            raise UpstreamError(f"OpenSearch did not record the seq: {recorded.get('result')!r}")

    def read_seq(self, index: str, doc_id: str, tenant: str) -> int:
        """The seq in a record as of the last refresh; 0 when there is none."""
        with translated("reading the applied seq"):
            try:
                # realtime=false reads as searches do: a seq shows once its data does.
                record = self.client.get(
                    index=index,
                    id=doc_id,
                    routing=tenant,
                    realtime=False,
                    request_timeout=self.timeout_s,
                )
            except NotFoundError:
                return 0  # no record, or no index yet
        return int(record.get("_source", {}).get("seq", 0))

    def search(
        self, indexes: Sequence[str], tenant: str, body: Json, *, params: Json | None = None
    ) -> list[tuple[int, float]]:
        """(rowid, score) of each hit of `body` in the tenant, best first; [] if no index yet."""
        response = self.request(
            "a search",
            lambda: self.client.search(
                index=",".join(indexes),
                body=body,
                routing=tenant,
                params=(params or {}) | {"request_timeout": self.timeout_s},
            ),
        )
        if response is None:
            return []
        if response.get("timed_out"):
            raise UpstreamTimeout("OpenSearch timed out on a search")
        shards = response.get("_shards", {})
        if shards.get("failed"):
            raise UpstreamError(
                f"a search failed on {shards['failed']} of {shards.get('total')} shards"
            )
        prefix = f"{tenant}:"
        found = []
        for hit in response.get("hits", {}).get("hits", []):
            doc_id = str(hit["_id"])
            rowid = doc_id[len(prefix) :]
            if not doc_id.startswith(prefix) or not rowid.isdigit():
                # The filters make this impossible; the _id is checked all the same.
                log.error("opensearch_foreign_hit", tenant_id=tenant, doc_id=doc_id)
                continue
            found.append((int(rowid), float(hit["_score"])))
        return sorted(found, key=lambda pair: (-pair[1], pair[0]))

    # -- internals -----------------------------------------------------------------------------

    def _delete_by_query(self, indexes: Sequence[str], tenant: str, scope: list[Json]) -> int:
        """One delete_by_query over `indexes`; returns its version conflicts."""
        response = self.request(
            "deleting replaced documents",
            lambda: self.client.delete_by_query(
                index=",".join(indexes),
                body={"query": {"bool": {"filter": scope}}},
                routing=tenant,
                conflicts="proceed",
                refresh=False,
                params=LENIENT | {"request_timeout": self.write_timeout_s},
            ),
        )
        return 0 if response is None else check_by_query(response, "deleting replaced documents")

    def _create(self, alias: str, body: Json) -> None:
        with translated("creating an index"):
            try:
                self.client.indices.create(index=Layout.backing(alias), body=body)
            except RequestError as exc:
                if exc.error != "resource_already_exists_exception":
                    raise  # another process creating it at the same moment is fine

    def check_width(self, alias: str) -> None:
        """Raise unless the vector index behind `alias` holds vectors of our width."""
        mappings = self.request(
            "reading the mapping", lambda: self.client.indices.get_mapping(index=alias)
        )
        for name, entry in (mappings or {}).items():
            field = entry.get("mappings", {}).get("properties", {}).get("embedding", {})
            if field.get("dimension") != self.dimensions:
                raise UpstreamError(
                    f"OpenSearch index {name} holds {field.get('dimension')}-dimensional "
                    f"vectors but this service embeds {self.dimensions}; reindex or change "
                    "the index prefix"
                )
