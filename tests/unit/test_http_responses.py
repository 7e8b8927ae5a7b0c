"""The shared resolver writes a route's result as JSON in one pydantic pass: the same document
Powertools' own two passes (``dump_python`` then ``json.dumps``) wrote, and the same failure
when a result does not match its model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from pydantic import BaseModel, Field

from lambdas.shared.http import create_resolver, resolve
from tests.support.events import http_event, lambda_context


class Agent(BaseModel):
    id: UUID
    name: str
    price: Decimal
    created_at: datetime
    display: str | None = Field(default=None, serialization_alias="displayName")


class Catalog(BaseModel):
    agents: list[Agent]
    note: str | None = None


AGENT = Agent(
    id=uuid4(),
    name='Subnúcleo de prospecção ☕ "citado" \\ \n',
    price=Decimal("199.90"),
    created_at=datetime(2026, 12, 2, 5, 0, 1, 123456, tzinfo=UTC),
    display="Ação",
)


def _resolver() -> APIGatewayHttpResolver:
    app = create_resolver()

    @app.get("/things/catalog")
    def catalog() -> Catalog:
        return Catalog(agents=[AGENT, AGENT])

    @app.get("/things/written")
    def written() -> Response[str]:
        return Response(200, content_types.APPLICATION_JSON, '{"items":[],"next_cursor":null}')

    @app.get("/things/broken")
    def broken() -> Catalog:
        return {"agents": [{"id": "not a uuid"}]}  # type: ignore[return-value]

    return app


def _get(app: APIGatewayHttpResolver, path: str) -> dict[str, Any]:
    return resolve(app, http_event("GET", path), lambda_context("test"))


def test_a_result_is_the_document_powertools_wrote() -> None:
    # Given what Powertools' own serialization writes for the route's model
    expected = json.loads(
        json.dumps(
            Catalog(agents=[AGENT, AGENT]).model_dump(mode="json", by_alias=True),
            separators=(",", ":"),
        )
    )

    # When the route answers
    response = _get(_resolver(), "/things/catalog")

    # Then the body is that JSON document, aliases and all, in UTF-8
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    assert json.loads(response["body"]) == expected
    assert expected["agents"][0]["displayName"] == "Ação"
    assert "Subnúcleo" in response["body"]


def test_a_result_that_does_not_match_its_model_is_not_sent() -> None:
    response = _get(_resolver(), "/things/broken")

    # Powertools' own answer to an invalid result: 422 naming the response's fields
    assert response["statusCode"] == 422
    body = json.loads(response["body"])
    assert body["error"]["code"] == "validation_error"
    assert ["response", "agents", "0", "id"] in [d["loc"] for d in body["error"]["details"]]


def test_json_a_route_wrote_itself_is_sent_as_it_is() -> None:
    response = _get(_resolver(), "/things/written")

    assert response["statusCode"] == 200
    assert response["body"] == '{"items":[],"next_cursor":null}'
