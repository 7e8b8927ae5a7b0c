-- The approvals list (GET /api/approvals) pages a tenant's requests newest first, on
-- (created_at, id). Without a status filter, and for status=expired (stored 'expired' rows and
-- 'pending' rows already past expires_at, which read 'expired' before the sweeper writes them:
-- lambdas/approvals/repository.py), no index gave that order: every request of the tenant was
-- read and sorted for a page (a seq scan and a top-N sort of 5,000 rows, 3-16 ms at 5,000 per
-- tenant). This index returns a page in order, reading only until the page is full.
CREATE INDEX approval_requests_tenant_created_idx
    ON alquimista_platform.approval_requests (tenant_id, created_at DESC, id DESC);
