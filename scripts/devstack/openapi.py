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
from urllib.parse import parse_qs
from typing import Any, Final

from lambdas.shared.errors import ErrorBody
from lambdas.shared.routes import GROUPS, ROUTES
from scripts.devstack.gateway import GatewayResponse

TITLE: Final = "Alquimista platform API"
VERSION: Final = "1.0.0"
METHODS: Final = ("get", "post", "put", "patch", "delete")
ERROR_REF: Final = {"$ref": "#/components/schemas/ErrorBody"}
ERROR_STATUSES: Final = {
    "400": "Malformed request (body not UTF-8 or not JSON)",
    "401": "Missing or invalid token",
    "403": "No membership in the tenant, or the role lacks the permission",
    "404": "Not found (or owned by another tenant)",
    "409": "Conflicts with existing data",
    "413": "Body over 1 MiB",
    "415": "Body not sent as application/json",
    "422": "Invalid or unknown fields",
    "503": "Database unavailable",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def _error_statuses(
    method: str, path: str, operation: dict[str, Any], *, protected: bool
) -> set[str]:
    """The error statuses an operation can answer, from how it is called."""
    statuses = {"503"}
    if method != "get":
        statuses |= {"400", "413", "422"}
    if operation.get("parameters"):
        statuses.add("422")
    if "requestBody" in operation:
        statuses.add("415")
    if "{" in path:
        statuses.add("404")
    if protected:
        statuses |= {"401", "403"} | ({"409"} if method != "get" else set())
    return statuses


def build_openapi() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for group in GROUPS:
        app = importlib.import_module(f"lambdas.{group}.handler").app
        spec = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, item in spec.get("paths", {}).items():
            paths.setdefault(path, {}).update(item)
        schemas.update(spec.get("components", {}).get("schemas", {}))
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for nested, definition in schemas["ErrorBody"].pop("$defs", {}).items():
        schemas[nested] = definition
    public = {(route.method.lower(), route.path) for route in ROUTES if route.public}
    for path, item in paths.items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation.setdefault(
                "tags", [path.split("/")[2] if path.startswith("/api/") else "ops"]
            )
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            protected = (method, path) not in public
            if protected:
                operation["security"] = [{"jwt": []}]
            for status in _error_statuses(method, path, operation, protected=protected):
                responses.setdefault(status, _error_response(ERROR_STATUSES[status]))
            operation["responses"] = dict(sorted(responses.items()))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Multi-tenant API of the AlquimistaAI agent platform. Every error is "
            '{"error": {"code", "message", "request_id"}}.',
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
