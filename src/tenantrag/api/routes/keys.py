"""POST, GET and DELETE /api/keys: a tenant's API keys (keys:admin).

A key is shown once, at creation; the store keeps only a keyed hash of its secret
(auth/keys.py). A key can do no more than whoever made it: its permissions are a subset of the
creator's and its clearance is at most the creator's. Revoking it reaches every node within a
second (auth/credentials.py). Another tenant's key is 404, exactly as an unknown one.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import IdsDep, ServicesDep, require
from tenantrag.api.identity_schemas import KeyIn, KeyList, KeyOut, NewKeyOut
from tenantrag.auth.keys import KEY_ID, key_hash, new_key
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.identity import ApiKey
from tenantrag.errors import Conflict, NotFound, PermissionDenied
from tenantrag.models import AuditEvent, Classification, Permission, Principal

router = APIRouter(prefix="/api", tags=["keys"])
# Live (unrevoked, unexpired) keys a tenant may hold: keys are checked by id, so their number
# costs nothing per request, but a runaway script must not fill the table.
MAX_LIVE_KEYS = 100
CanManageKeys = Annotated[Principal, Depends(require(Permission.KEYS_ADMIN))]


def key_out(key: ApiKey) -> KeyOut:
    """A stored key as the API shows it (never its secret or hash)."""
    return KeyOut(
        id=key.id,
        name=key.name,
        permissions=sorted(key.permissions),
        clearance=key.clearance.label,
        expires_at=key.expires_at,
        rate_limit_per_minute=key.rate_limit,
        created_at=key.created_at,
        created_by=key.created_by,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "/keys",
    status_code=201,
    summary="Make an API key (its secret is shown only in this answer)",
    responses={
        403: {"description": "The key would have more rights than you"},
        409: {"description": "Your tenant holds the most live keys it may; revoke one first"},
    },
)
async def create_key(
    body: KeyIn, principal: CanManageKeys, services: ServicesDep, ids: IdsDep
) -> NewKeyOut:
    """201 with the key; it can do no more than you: your permissions, at most your clearance."""
    clearance = Classification.parse(body.clearance)
    beyond = sorted(set(body.permissions) - principal.permissions)
    if beyond:
        raise PermissionDenied(f"A key cannot have permissions you lack: {', '.join(beyond)}.")
    if clearance > principal.clearance:
        raise PermissionDenied("A key's clearance cannot be above your own.")
    now = time.time()
    held = await run_in_threadpool(services.store.list_api_keys, principal.tenant_id)
    live = [k for k in held if k.revoked_at is None and (k.expires_at or now + 1) > now]
    if len(live) >= MAX_LIVE_KEYS:
        raise Conflict(f"Your tenant holds {MAX_LIVE_KEYS} live API keys; revoke one first.")
    key_id, secret, full = new_key()
    key = ApiKey(
        id=key_id,
        tenant_id=principal.tenant_id,
        name=body.name,
        permissions=tuple(sorted(set(body.permissions))),
        clearance=clearance,
        rate_limit=body.rate_limit_per_minute,
        created_by=principal.user_id,
        created_at=now,
        expires_at=None if body.expires_in_days is None else now + body.expires_in_days * 86400,
    )
    detail: dict[str, str | int | float | bool] = {
        "permissions": ",".join(key.permissions),
        "clearance": clearance.label,
    }
    if body.expires_in_days is not None:
        detail["expires_in_days"] = body.expires_in_days
    if body.rate_limit_per_minute is not None:
        detail["rate_limit_per_minute"] = body.rate_limit_per_minute
    records = ChangeRecords(
        AuditEvent(
            "api_key_created",
            "success",
            principal.tenant_id,
            principal.user_id,
            ids,
            (key_id,),
            detail,
        )
    )
    digest = key_hash(services.authenticator.pepper, secret)
    await run_in_threadpool(services.store.create_api_key, key, digest, records)
    return NewKeyOut(**key_out(key).model_dump(), key=full)


@router.get("/keys", summary="Your tenant's API keys, without their secrets")
async def list_keys(principal: CanManageKeys, services: ServicesDep) -> KeyList:
    """Every key of the caller's tenant, revoked ones included, oldest first."""
    keys = await run_in_threadpool(services.store.list_api_keys, principal.tenant_id)
    return KeyList(keys=[key_out(k) for k in keys])


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key: every node refuses it within a second",
    responses={404: {"description": "No key of your tenant has this id"}},
)
async def revoke_key(
    principal: CanManageKeys,
    services: ServicesDep,
    ids: IdsDep,
    key_id: Annotated[str, Path(max_length=64)],
) -> Response:
    """204; revoking a revoked key again is harmless. Another tenant's key is 404."""
    if not KEY_ID.fullmatch(key_id):
        # new_key's ids are 12 hex digits: any other (say one holding a NUL, which PostgreSQL
        # refuses) is no key of this tenant's, so it never reaches the store.
        raise NotFound("No API key of your tenant has this id.")
    records = ChangeRecords(
        AuditEvent(
            "api_key_revoked", "success", principal.tenant_id, principal.user_id, ids, (key_id,)
        )
    )
    await run_in_threadpool(services.store.revoke_api_key, principal.tenant_id, key_id, records)
    services.authenticator.forget_key(key_id)  # this node refuses it at once
    return Response(status_code=204)
