"""Erasing a tenant beyond the store of record: its index files and its Redis entries.

`Store.erase_tenant` removes the tenant's rows in one transaction and appends an erase entry
to the change log; each node then deletes its own copy and index files (follower.py calls
`remove_index_files`). What lives in Redis is shared by every node and removed once, by
whoever erases: the answer and query-embedding cache entries (`<tenant>:...`) and the rate
limiter's windows (`RL:<tenant>...`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from redis.asyncio import Redis

from tenantrag.backends.ratelimit import KEY_PREFIX as RATE_LIMIT_PREFIX
from tenantrag.models import is_valid_tenant_id


def tenant_index_dir(index_root: Path, tenant_id: str) -> Path:
    """The folder holding the tenant's keyword index folders and vector snapshot."""
    if not is_valid_tenant_id(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    return index_root / tenant_id


def remove_index_files(index_root: Path, tenant_id: str) -> int:
    """Delete the tenant's index folder under `index_root`; how many files it held."""
    folder = tenant_index_dir(index_root, tenant_id)
    if not folder.exists():
        return 0
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder, ignore_errors=True)
    return files


async def remove_redis_entries(redis_url: str, tenant_id: str) -> int:
    """Delete every Redis key of the tenant (cache entries, rate windows); how many went.

    Cache keys are `<tenant>:<sha256>` (backends/cache) and tenant ids cannot hold `:`, so the
    pattern matches this tenant's keys and no other's; rate windows are `RL:<tenant>` and
    `RL:<tenant>/key/<id>` for its API keys.
    """
    if not is_valid_tenant_id(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    client = Redis.from_url(redis_url.removeprefix("async+"), socket_timeout=5)
    removed = 0
    try:
        patterns = (
            f"{tenant_id}:*",
            f"{RATE_LIMIT_PREFIX}{tenant_id}",
            f"{RATE_LIMIT_PREFIX}{tenant_id}/*",
        )
        for pattern in patterns:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    removed += int(await client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(await client.unlink(*batch))
    finally:
        await client.aclose()
    return removed
