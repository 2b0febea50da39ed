"""The RAG pipeline: the stages a query moves through, in this order (services.py lists them).

1. Validate          re-check isolation; normalise the question            (validate.py)
2. Embed             the question's vector through the two-tier cache,     (embed.py)
   DetectInjection   then screened: patterns and a classifier over it
   AnswerCache       on a hit, stages 3 to 6 do not run                    (cache.py)
3. Retrieve          BM25 + vector, fused (retrieval/)                     (retrieve.py)
4. Govern            leakage check, PII redaction, classification, indirect injection (govern.py)
5. Generate          prompt within budget, model call (breaker, retry, fallback), streaming
6. PostProcess       citations, answer redaction                           (postprocess.py)
   Account           the bill, the audit record, the cost ledger           (account.py)

`QueryService` (service.py) runs them, whole or streamed; `SearchService` (search.py) is the
shorter path of /api/search. The stage protocol and its runner are in stages.py.
"""
