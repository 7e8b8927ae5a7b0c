"""Public "talk to sales" requests."""

from __future__ import annotations

import hashlib
from typing import Final

from lambdas.billing.models import CommercialRequestIn, CommercialRequestResponse
from lambdas.billing.ports import CommercialRequestsUowFactory
from lambdas.shared.constants import COMMERCIAL_REQUESTS_PER_IP, COMMERCIAL_REQUESTS_WINDOW_S
from lambdas.shared.errors import TooManyRequests, ValidationFailed

COMMERCIAL_REQUESTS_BUCKET: Final = "commercial_requests"


class CommercialRequestsRateLimited(TooManyRequests):
    pass


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    constraints = ("commercial_requests_plan_id_fkey",)
    constraint_message = "plan_id names no plan"


def submit_commercial_request(
    uow_factory: CommercialRequestsUowFactory, request: CommercialRequestIn, *, client_ip: str
) -> CommercialRequestResponse:
    """Record a "talk to sales" request, at most a few per client IP per window.

    The IP is kept only as a SHA-256 digest (rate limiting needs no more). A plan_id that names
    no plan is UnknownPlan (the foreign key decides).
    """
    subject = hashlib.sha256(client_ip.encode()).hexdigest()
    with uow_factory() as uow:
        count = uow.rate_limits.hit(
            COMMERCIAL_REQUESTS_BUCKET, subject, window_s=COMMERCIAL_REQUESTS_WINDOW_S
        )
        if count > COMMERCIAL_REQUESTS_PER_IP:
            raise CommercialRequestsRateLimited("too many requests from this address; retry later")
        created = uow.commercial_requests.create(request, source_ip_hash=subject)
        uow.record(
            "commercial_request.created",
            aggregate_type="commercial_request",
            aggregate_id=str(created.id),
            payload={
                "commercial_request_id": created.id,
                "plan_id": request.plan_id,
                "subnucleo_ids": request.subnucleo_ids,
            },
        )
        uow.commit()
        return created
