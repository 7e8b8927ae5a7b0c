from __future__ import annotations

from lambdas.billing.services.commercial_requests import CommercialRequestsRateLimited
from lambdas.shared.errors import NotFound, TooManyRequests, error_headers
from lambdas.shared.http import error_response


def test_a_429_tells_the_client_when_to_retry() -> None:
    response = error_response({}, CommercialRequestsRateLimited("slow down"))

    assert response["statusCode"] == 429
    assert response["headers"]["Retry-After"] == "60"


def test_a_raise_site_that_knows_the_wait_sends_its_own() -> None:
    assert error_headers(TooManyRequests("slow down", retry_after_s=7)) == {"Retry-After": "7"}


def test_other_errors_carry_no_retry_after() -> None:
    assert error_headers(NotFound("nothing")) == {}
