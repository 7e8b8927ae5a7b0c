"""One OpenAPI document for every route group, built from the handlers' own resolvers.

Each route-group Lambda has its own Powertools resolver; this merges their schemas, marks the
routes the table protects with the JWT scheme, and documents the platform's error body in
place of Powertools' default validation error.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from lambdas.shared.errors import ErrorBody
from lambdas.shared.routes import GROUPS, ROUTES, Route
from scripts.devstack.gateway import GatewayResponse

TITLE: Final = "Alquimista platform API"
VERSION: Final = "1.0.0"
METHODS: Final = ("get", "post", "put", "patch", "delete")
ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorBody"}

# The body rules that live in validators, written as JSON Schema (a test checks both agree).
BODY_RULES: Final[dict[str, dict[str, Any]]] = {
    "StartTrialRequest": {
        "description": "Exactly one of agent_id or subnucleo_id.",
        "oneOf": [
            {
                "required": ["agent_id"],
                "properties": {"agent_id": {"type": "string"}, "subnucleo_id": {"type": "null"}},
            },
            {
                "required": ["subnucleo_id"],
                "properties": {"subnucleo_id": {"type": "string"}, "agent_id": {"type": "null"}},
            },
        ],
    },
}
CURSOR: Final = {
    "description": "Opaque: the next_cursor of the previous page, unchanged (URL-safe base64). "
    "Any other value is 422 invalid_cursor.",
    "pattern": "^[A-Za-z0-9_-]+$",
}


def platform_statuses(route: Route, operation: dict[str, Any]) -> dict[str, str]:
    """The error statuses the shared layer (lambdas/shared/http.py, the resolver's error
    handlers, idempotency) can answer on this route, whatever its use case does."""
    statuses = {
        "400": "`bad_request`: body not UTF-8, or not JSON",
        "413": "`payload_too_large`: body over 1 MiB",
        "503": "`service_unavailable`: database unavailable; retry",
    }
    validation: list[str] = []
    if operation.get("parameters"):
        validation.append("path or query parameters invalid")
    if "requestBody" in operation:
        statuses["415"] = "`unsupported_media_type`: body not sent as application/json"
        validation.append("body fields invalid or unknown")
    if not route.public:
        statuses["401"] = "`unauthorized`: missing, invalid or expired token"
        statuses["403"] = (
            "`forbidden`: no membership in the tenant, or the role lacks the permission; "
            "`membership_required`: the account belongs to no tenant yet (a tenant admin "
            "must invite it)"
        )
        validation.append("X-Tenant-Id is not a UUID")
    if route.method != "GET":
        statuses["409"] = "`conflict`: conflicts with an existing record"
    if route.method == "POST" and route.accepts_idempotency_key:
        statuses["409"] += "; `idempotent_request_in_progress`: the same Idempotency-Key is running"
        validation.append("`idempotency_key_reused` with another request")
    if validation:
        statuses["422"] = "`validation_error`: " + "; ".join(validation)
    return statuses


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _document_errors(route: Route, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "HTTPValidationError" in json.dumps(responses.get("422", {})):
        del responses["422"]  # Powertools' default; the platform's 422 is below
    for status, description in platform_statuses(route, operation).items():
        if status in responses:
            declared = responses[status]
            declared["description"] = f"{description}; {declared['description']}"
            declared["content"] = {"application/json": {"schema": ERROR_REF}}
        else:
            responses[status] = _error_response(description)
    operation["responses"] = dict(sorted(responses.items()))


def _document_cursor(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == "cursor":
            parameter["description"] = CURSOR["description"]
            for option in parameter["schema"].get("anyOf", [parameter["schema"]]):
                if option.get("type") == "string":
                    option["pattern"] = CURSOR["pattern"]


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for group in GROUPS:
        app = importlib.import_module(f"lambdas.{group}.handler").app
        spec = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, item in spec.get("paths", {}).items():
            paths.setdefault(path, {}).update(item)
        schemas.update(spec.get("components", {}).get("schemas", {}))
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for nested, definition in schemas["ErrorBody"].pop("$defs", {}).items():
        schemas[nested] = definition
    for name, rule in BODY_RULES.items():
        schemas[name].update(rule)
    schemas["AgentPage"]["properties"]["next_cursor"]["description"] = (
        "Pass as ?cursor= to get the next page; null on the last page"
    )
    routes = {(route.method.lower(), route.path): route for route in ROUTES}
    for path, item in paths.items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            route = routes[(method, path)]
            operation.setdefault(
                "tags", [path.split("/")[2] if path.startswith("/api/") else "ops"]
            )
            if not route.public:
                operation["security"] = [{"jwt": []}]
            if path == "/health":  # health answers with its own report, never an error body
                operation["responses"].pop("422", None)
            else:
                _document_errors(route, operation)
            _document_cursor(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Multi-tenant API of the AlquimistaAI agent platform. Every error is "
            '{"error": {"code", "message", "request_id"}}. The gateway itself answers 404 '
            "(no route), 405 (method), 413 (over 10 MB), 414/431 (request line and headers "
            "over 10,240 bytes) with the same body.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "jwt": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Cognito ID token (locally: scripts/dev_token.py)",
                }
            },
        },
    }


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _script_safe(spec_json: str) -> str:
    """The spec as a JavaScript literal that cannot close the page's <script> element."""
    return spec_json.replace("</", "<\\/")


def docs_routes() -> dict[str, Callable[[str], GatewayResponse]]:
    """Swagger UI at /docs for the local gateway (assets inlined from Powertools: no CDN).

    Powertools' page takes the spec itself (it is written into the page as a JavaScript
    object), not its URL; the spec is also served at /docs/openapi.json and at
    /docs?format=json, the address the page shows.
    """
    from aws_lambda_powertools.event_handler.openapi import swagger_ui  # noqa: PLC0415
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import (  # noqa: PLC0415
        generate_swagger_html,
    )

    assets = Path(swagger_ui.__file__).parent
    rendered: list[str] = []

    def spec_json() -> str:
        if not rendered:  # built once: it imports every handler module
            rendered.append(render(build_openapi()))
        return rendered[0]

    def spec(query: str = "") -> GatewayResponse:
        return GatewayResponse(200, {"content-type": "application/json"}, spec_json().encode())

    def page(query: str = "") -> GatewayResponse:
        if parse_qs(query).get("format") == ["json"]:
            return spec()
        html = generate_swagger_html(
            spec=_script_safe(spec_json()),
            swagger_js=(assets / "swagger-ui-bundle.min.js").read_text(),
            swagger_css=(assets / "swagger-ui.min.css").read_text(),
            swagger_base_url="",
            oauth2_config=None,
        )
        return GatewayResponse(200, {"content-type": "text/html; charset=utf-8"}, html.encode())

    return {"/docs": page, "/docs/openapi.json": spec}
