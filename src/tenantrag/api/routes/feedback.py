"""POST /api/feedback: a thumbs up or down (and a comment) on one of your tenant's answers.

The answer is named by its request id (the X-Request-ID of its /api/query or /v1 reply). The
store accepts it only when the caller's own tenant was answered that request (its `query`
audit record), so another tenant's request id is 404 exactly as an unknown one. A user's second
rating of the same answer replaces the first: posting twice is harmless. The comment is
redacted before it is stored and never enters the audit record, which holds the rating.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import CanQuery, IdsDep, ServicesDep
from tenantrag.api.schemas import FeedbackIn, FeedbackOut
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.extras import Feedback
from tenantrag.governance.pii import redact
from tenantrag.models import AuditEvent
from tenantrag.observability import metrics

router = APIRouter(prefix="/api", tags=["feedback"])


def _redacted(comment: str | None) -> str | None:
    if comment is None:
        return None
    result = redact(comment)
    if result.counts:
        metrics.count_redactions({str(kind): n for kind, n in result.counts.items()})
    return result.text


@router.post(
    "/feedback",
    status_code=201,
    summary="Rate an answer: thumbs up or down, with an optional comment",
    responses={
        200: {"model": FeedbackOut, "description": "Your earlier rating was replaced"},
        404: {"description": "No answered request of your tenant has this request_id"},
    },
)
async def post_feedback(
    body: FeedbackIn,
    principal: CanQuery,
    services: ServicesDep,
    ids: IdsDep,
    response: Response,
) -> FeedbackOut:
    """201 for a new rating, 200 when it replaced yours; 404 unless your tenant was answered."""
    feedback = Feedback(
        principal.tenant_id,
        body.request_id,
        principal.user_id,
        body.rating,
        _redacted(body.comment),
    )
    detail = {"rating": body.rating, "comment_chars": len(feedback.comment or "")}
    records = ChangeRecords(
        AuditEvent(
            "feedback",
            "success",
            principal.tenant_id,
            principal.user_id,
            ids,
            (body.request_id,),
            detail,
        )
    )
    created = await run_in_threadpool(services.store.put_feedback, feedback, records)
    response.status_code = 201 if created else 200
    return FeedbackOut(
        request_id=feedback.request_id,
        rating=feedback.rating,
        comment=feedback.comment,
        created=created,
    )
