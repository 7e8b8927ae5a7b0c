from __future__ import annotations

from psycopg.types.json import Jsonb

from lambdas.billing.models import CommercialRequestIn, CommercialRequestResponse
from lambdas.billing.repositories import one
from lambdas.shared.db import Connection


class CommercialRequestRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create(
        self, request: CommercialRequestIn, *, source_ip_hash: str
    ) -> CommercialRequestResponse:
        row = self._conn.execute(
            """
            INSERT INTO public.commercial_requests
                (company_name, contact_name, email, phone, tax_id, plan_id, subnucleo_ids,
                 message, consent_given, consent_at, source, metadata)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, true, now(), 'api', %s)
            RETURNING id, status, created_at
            """,
            (
                request.company_name,
                request.contact_name,
                request.email,
                request.phone,
                request.tax_id,
                request.plan_id,
                list(request.subnucleo_ids),
                request.message,
                Jsonb({"source_ip_sha256": source_ip_hash}),
            ),
        ).fetchone()
        return CommercialRequestResponse(**one(row))


class RateLimitRepository:
    """Fixed-window counters for public endpoints (``public.public_rate_limits``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def hit(self, bucket: str, subject: str, *, window_s: int) -> int:
        """Count one request in the current window; returns the window's count so far.

        Ended windows of every subject in the bucket go first, so the table holds at most the
        subjects seen in the last window, not every client that ever called once."""
        self._conn.execute(
            """
            DELETE FROM public.public_rate_limits
            WHERE bucket = %s AND window_start < now() - make_interval(secs => %s)
            """,
            (bucket, window_s),
        )
        row = self._conn.execute(
            """
            INSERT INTO public.public_rate_limits (bucket, subject, window_start, window_s, count)
            VALUES (%(bucket)s, %(subject)s,
                    to_timestamp(floor(extract(epoch FROM now()) / %(window)s) * %(window)s),
                    %(window)s, 1)
            ON CONFLICT (bucket, subject, window_start)
            DO UPDATE SET count = public.public_rate_limits.count + 1
            RETURNING count
            """,
            {"bucket": bucket, "subject": subject, "window": window_s},
        ).fetchone()
        return int(one(row)["count"])
