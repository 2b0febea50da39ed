"""Pure-ASGI middleware every request passes, outermost first (app.py adds them in reverse).

security_headers.py   nosniff, framing, CSP; no-store on /api
request_id.py         X-Request-ID and the W3C trace context; the request's server span
openai_errors.py      on /v1, OpenAI's `type` and `param` added to every error body
errors.py             the catch-all: any unexpected exception becomes a JSON 500
access_log.py         one log line and the golden metrics per request
body_limit.py         413 for bodies over the limit, chunked ones included
auth.py               JWT, X-Tenant-ID naming the token's own active tenant (401/400/403);
                      on /v1 the header is optional
rate_limit.py         the tenant's per-minute limit (429)
respond.py            how a middleware answers with the contract's error body
"""
