"""Talking to OpenSearch: the client, error translation, and bulk writes that never lie.

Every call goes through `translated`, which turns opensearch-py's exceptions into ours:
unreachable -> DependencyUnavailable, a timeout -> UpstreamTimeout, 429/503 ->
DependencyUnavailable, anything else -> UpstreamError. `bulk` inspects every item of every
bulk response, retries only the items OpenSearch rejected as overloaded (429, 503) a bounded
number of times, and raises naming how many failed otherwise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    ConnectionError,
    ConnectionTimeout,
    ImproperlyConfigured,
    SerializationError,
    SSLError,
    TransportError,
)

from tenantrag.errors import DependencyUnavailable, UpstreamError, UpstreamTimeout

Json = dict[str, Any]

RETRYABLE_STATUSES = frozenset({429, 503})
MISSING_INDEX = "index_not_found_exception"


def build_client(
    url: str,
    *,
    ca_certs: str | Path | None = None,
    tls_server_name: str | None = None,
    timeout_s: float = 10.0,
    max_retries: int = 2,
) -> OpenSearch:
    """A client for `url` (credentials may ride in it: https://user:pass@host:9200).

    `ca_certs` is the PEM bundle that signed the cluster's certificate; the security plugin's
    demo certificates are self-signed, so without it TLS verification fails. `tls_server_name`
    is the name the certificate is checked against when it is not the URL's host (urllib3's
    assert_hostname). Verification is never turned off. Transport-level retries cover
    connection failures and 502/503/504.
    """
    options: Json = {
        "timeout": timeout_s,
        "max_retries": max_retries,
        "retry_on_status": (502, 503, 504),
        "retry_on_timeout": False,
    }
    if ca_certs is not None:
        options |= {"ca_certs": str(ca_certs), "verify_certs": True}
    if tls_server_name:
        options["ssl_assert_hostname"] = tls_server_name
    return OpenSearch(hosts=[url], **options)


def error_type(exc: TransportError) -> str:
    """OpenSearch's error type and reason, e.g. "mapper_parsing_exception: failed to parse"."""
    info = exc.info
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        return _describe(info["error"])
    return str(exc.error)


def _describe(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    kind, reason = error.get("type", "error"), error.get("reason")
    return f"{kind}: {reason}" if reason else str(kind)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Raise our errors for opensearch-py's, naming `action` (never the URL or credentials)."""
    try:
        yield
    except ConnectionTimeout as exc:
        raise UpstreamTimeout(f"OpenSearch did not answer {action} in time") from exc
    except SSLError as exc:
        raise DependencyUnavailable(
            f"OpenSearch's TLS certificate could not be verified ({action}); is its CA in "
            "TENANTRAG_OPENSEARCH_CA_CERTS?"
        ) from exc
    except ConnectionError as exc:
        raise DependencyUnavailable(f"OpenSearch is unreachable ({action})") from exc
    except TransportError as exc:
        status = exc.status_code
        if status in RETRYABLE_STATUSES:
            raise DependencyUnavailable(
                f"OpenSearch is overloaded or unavailable ({status} on {action})"
            ) from exc
        if status == 504:
            raise UpstreamTimeout(f"OpenSearch timed out on {action} (504)") from exc
        raise UpstreamError(f"OpenSearch failed {action}: {status} {error_type(exc)}") from exc
    except (SerializationError, ImproperlyConfigured) as exc:
        raise UpstreamError(f"OpenSearch client failed {action}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Operation:
    """One bulk item: its action line and, for index actions, its source line."""

    doc_id: str
    lines: bytes


def index_operation(index: str, doc_id: str, routing: str, source: Json) -> Operation:
    """A bulk `index` item (create or replace) of `source` under `doc_id`."""
    action = {"index": {"_index": index, "_id": doc_id, "routing": routing}}
    return Operation(doc_id, _ndjson(action) + _ndjson(source))


def _ndjson(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass
class BulkWriter:
    """Sends bulk items in requests of at most `max_bytes`, retrying overloaded items."""

    client: OpenSearch
    max_attempts: int = 3
    backoff_s: float = 0.5
    max_bytes: int = 8_000_000
    timeout_s: float = 120.0
    sleep: Callable[[float], None] = time.sleep

    def write(self, operations: Sequence[Operation], *, index: str | None, routing: str) -> None:
        """Send every operation; return only when each one was acknowledged.

        Each goes to the alias `index`, else to the alias the item names.
        """
        batch: list[Operation] = []
        size = 0
        for operation in operations:
            if batch and size + len(operation.lines) > self.max_bytes:
                self._send(batch, index, routing)
                batch, size = [], 0
            batch.append(operation)
            size += len(operation.lines)
        if batch:
            self._send(batch, index, routing)

    def _send(self, batch: list[Operation], index: str | None, routing: str) -> None:
        pending = batch
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            response = self._post(pending, index, routing, last=last)
            if response is not None:
                pending = self._failed(pending, response, len(batch))
                if not pending:
                    return
            if not last:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))

        raise UpstreamError(
            f"OpenSearch rejected {len(pending)} of {len(batch)} bulk items as overloaded "
            f"{self.max_attempts} times; nothing was recorded as applied"
        )

    def _post(
        self, pending: list[Operation], index: str | None, routing: str, *, last: bool
    ) -> Json | None:
        """The bulk answer; None when the whole request was refused as overloaded (429/503)."""
        with translated("a bulk write"):
            try:
                response: Json = self.client.bulk(
                    body=b"".join(op.lines for op in pending),
                    index=index,
                    routing=routing,
                    require_alias=True,  # never auto-create an index named like the alias
                    headers={"content-type": "application/x-ndjson"},
                    request_timeout=self.timeout_s,
                )
            except TransportError as exc:
                if last or exc.status_code not in RETRYABLE_STATUSES:
                    raise
                return None
        return response

    @staticmethod
    def _failed(pending: list[Operation], response: Json, total: int) -> list[Operation]:
        """The items to retry; raises if any item failed for a reason retrying cannot fix."""
        items = response.get("items")
        if not isinstance(items, list) or len(items) != len(pending):
            raise UpstreamError("OpenSearch answered a bulk write with a malformed response")
        if not response.get("errors"):
            return []
        retry: list[Operation] = []
        fatal: list[str] = []
        for operation, item in zip(pending, items, strict=True):
            result: Json = next(iter(item.values()), {}) if isinstance(item, dict) else {}
            status = int(result.get("status", 500))
            if status < 300:
                continue
            if status in RETRYABLE_STATUSES:
                retry.append(operation)
            else:
                fatal.append(f"{operation.doc_id}: {status} {_describe(result.get('error'))}")
        if fatal:
            failed = len(fatal) + len(retry)
            raise UpstreamError(
                f"OpenSearch rejected {failed} of {total} bulk items (first: {fatal[0]}); "
                "nothing was recorded as applied"
            )
        return retry
