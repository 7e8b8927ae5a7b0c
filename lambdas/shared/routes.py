"""The one route table: CDK builds API Gateway routes from it, the local gateway dispatches with
it, and the tests iterate it. Adding a route here makes it exist everywhere.

Paths use API Gateway syntax (``{id}``); handlers declare the same path in Powertools syntax
(``<id>``), and a test checks that both sides agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

_PARAM = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Route:
    method: HttpMethod
    path: str
    group: str
    public: bool = False
    # The permission a caller's role must grant; every protected route names one.
    permission: str | None = None
    # Webhooks deduplicate by the provider's event id instead, after checking the signature.
    accepts_idempotency_key: bool = True
    # A route that changes state writes one audit row and its outbox event in its transaction;
    # one that must not (or cannot) says why here. tests/integration/test_every_write_is_recorded.py
    audit_exempt: str | None = None
    # A route that performs a sensitive action (an agent action, a chat message, an outreach)
    # passes the gate (lambdas/shared/gate.py) before it; tests/integration/test_gate_routes.py
    # proves each one stops when a policy blocks it.
    sensitive: bool = False

    @property
    def route_key(self) -> str:
        """API Gateway's route key, e.g. ``GET /api/agents/{agent_id}``."""
        return f"{self.method} {self.path}"

    @property
    def resolver_path(self) -> str:
        """The same path as a Powertools resolver declares it."""
        return _PARAM.sub(r"<\1>", self.path)

    @property
    def handler(self) -> str:
        """Dotted path of the Lambda entry point that serves this route."""
        return f"lambdas.{self.group}.handler.lambda_handler"

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if ``path`` fits this route's template, else None."""
        template = self.path.strip("/").split("/")
        segments = path.strip("/").split("/")
        if len(template) != len(segments):
            return None
        params: dict[str, str] = {}
        for expected, actual in zip(template, segments, strict=True):
            param = _PARAM.fullmatch(expected)
            if param and actual:
                params[param.group(1)] = actual
            elif expected != actual:
                return None
        return params


ROUTES: Final[tuple[Route, ...]] = (
    Route("GET", "/health", "health", public=True),
    Route("GET", "/api/agents", "agents", permission="agents:read"),
    # Before /api/agents/{agent_id}: API Gateway prefers the literal segment, and so do the local
    # gateway and the test helpers, which take the first matching route in table order.
    Route("GET", "/api/agents/active", "agents", permission="agents:read"),
    Route("GET", "/api/agents/{agent_id}", "agents", permission="agents:read"),
    Route(
        "POST",
        "/api/agents/{agent_id}/activate",
        "agents",
        permission="agents:activate",
        sensitive=True,
    ),
    Route("POST", "/api/agents/{agent_id}/deactivate", "agents", permission="agents:activate"),
    Route("GET", "/api/billing/subscription", "billing", permission="billing:read"),
    Route("POST", "/api/billing/subscribe", "billing", permission="billing:manage"),
    Route("POST", "/api/billing/change-plan", "billing", permission="billing:manage"),
    Route("POST", "/api/billing/cancel", "billing", permission="billing:manage"),
    Route("GET", "/api/billing/payment-events", "billing", permission="billing:manage"),
    Route("POST", "/api/billing/trials", "billing", permission="billing:manage"),
    Route("GET", "/api/billing/trials", "billing", permission="billing:read"),
    Route("GET", "/api/billing/trials/{trial_id}/usage", "billing", permission="billing:read"),
    # Using a trial is using the product, which members may do.
    Route("POST", "/api/billing/trials/{trial_id}/usage", "billing", permission="chat:use"),
    Route("POST", "/api/billing/commercial-requests", "billing", public=True),
    Route(
        "POST",
        "/api/billing/webhooks/{provider}",
        "billing",
        public=True,
        accepts_idempotency_key=False,
    ),
    Route("GET", "/api/audit", "audit", permission="audit:read"),
    Route("GET", "/api/audit/verify", "audit", permission="audit:read"),
    Route("GET", "/api/plans", "plans", permission="plans:read"),
    Route("GET", "/api/members", "members", permission="members:read"),
    Route("POST", "/api/members/invitations", "members", permission="members:manage"),
    Route("GET", "/api/members/{user_id}", "members", permission="members:read"),
    Route("PATCH", "/api/members/{user_id}", "members", permission="members:manage"),
    Route("DELETE", "/api/members/{user_id}", "members", permission="members:manage"),
    Route("GET", "/api/activity", "activity", permission="activity:read"),
    Route("GET", "/api/plans/{plan_id}", "plans", permission="plans:read"),
    Route("GET", "/api/policies", "approvals", permission="policies:read"),
    Route("POST", "/api/policies", "approvals", permission="policies:write"),
    # Before /api/policies/{rule_id}, as /api/agents/active is before /api/agents/{agent_id}.
    Route("POST", "/api/policies/evaluate", "approvals", permission="policies:read"),
    Route("GET", "/api/policies/settings", "approvals", permission="policies:read"),
    Route("PUT", "/api/policies/settings", "approvals", permission="policies:write"),
    Route("GET", "/api/policies/{rule_id}", "approvals", permission="policies:read"),
    Route("PUT", "/api/policies/{rule_id}", "approvals", permission="policies:write"),
    Route("POST", "/api/policies/{rule_id}/deactivate", "approvals", permission="policies:write"),
    Route("GET", "/api/approvals", "approvals", permission="approvals:read"),
    Route("POST", "/api/approvals", "approvals", permission="approvals:request", sensitive=True),
    Route("GET", "/api/approvals/{approval_id}", "approvals", permission="approvals:read"),
    Route(
        "POST",
        "/api/approvals/{approval_id}/decisions",
        "approvals",
        permission="approvals:decide",
    ),
    Route(
        "POST",
        "/api/approvals/{approval_id}/cancel",
        "approvals",
        permission="approvals:request",
    ),
    # Leads: literal segments under /api/leads/ come before /api/leads/{lead_id}.
    Route("GET", "/api/leads/changes", "leads", permission="leads:read"),
    Route("POST", "/api/leads/sync", "leads", permission="leads:write"),
    Route("GET", "/api/leads/conflicts", "leads", permission="leads:read"),
    Route("POST", "/api/leads/conflicts/{conflict_id}/resolve", "leads", permission="leads:write"),
    Route("POST", "/api/leads/dsr", "leads", permission="leads:dsr"),
    Route("GET", "/api/leads/dsr", "leads", permission="leads:dsr"),
    Route("GET", "/api/leads/dsr/{request_id}", "leads", permission="leads:dsr"),
    Route("GET", "/api/leads/processing-record", "leads", permission="leads:dsr"),
    Route("GET", "/api/leads/metrics", "leads", permission="leads:read"),
    Route("POST", "/api/leads/campaigns", "leads", permission="leads:write"),
    Route("GET", "/api/leads/campaigns", "leads", permission="leads:read"),
    Route("GET", "/api/leads/campaigns/{campaign_id}", "leads", permission="leads:read"),
    Route("POST", "/api/leads/campaigns/{campaign_id}/status", "leads", permission="leads:write"),
    Route("DELETE", "/api/leads/campaigns/{campaign_id}", "leads", permission="leads:write"),
    Route("GET", "/api/leads/meetings/{meeting_id}", "leads", permission="leads:read"),
    Route("POST", "/api/leads/meetings/{meeting_id}/reschedule", "leads", permission="leads:write"),
    Route("POST", "/api/leads/meetings/{meeting_id}/cancel", "leads", permission="leads:write"),
    Route("POST", "/api/leads/meetings/{meeting_id}/complete", "leads", permission="leads:write"),
    # Leads intake. Literal segments (forms, imports) come before the group's /{lead_id} routes.
    Route("POST", "/api/leads/forms", "leads", permission="leads:forms"),
    Route("GET", "/api/leads/forms/{form_id}", "leads", permission="leads:read"),
    # A capture form on the tenant's site: no token, rate limited per IP per form.
    Route("POST", "/api/leads/forms/{form_id}/submissions", "leads", public=True),
    Route("POST", "/api/leads/imports", "leads", permission="leads:write"),
    Route("GET", "/api/leads/imports/{import_id}", "leads", permission="leads:read"),
    Route(
        "POST", "/api/leads/{lead_id}/outreach", "leads", permission="leads:write", sensitive=True
    ),
    Route("POST", "/api/leads", "leads", permission="leads:write"),
    Route("GET", "/api/leads", "leads", permission="leads:read"),
    Route("GET", "/api/leads/{lead_id}", "leads", permission="leads:read"),
    Route("PATCH", "/api/leads/{lead_id}", "leads", permission="leads:write"),
    Route("DELETE", "/api/leads/{lead_id}", "leads", permission="leads:write"),
    Route("POST", "/api/leads/{lead_id}/consents", "leads", permission="leads:write"),
    Route("GET", "/api/leads/{lead_id}/consents", "leads", permission="leads:read"),
    Route("POST", "/api/leads/{lead_id}/interactions", "leads", permission="leads:write"),
    Route("GET", "/api/leads/{lead_id}/interactions", "leads", permission="leads:read"),
    Route("POST", "/api/leads/{lead_id}/meetings", "leads", permission="leads:write"),
    # Chat: a member's own sessions (chat:use); the knowledge base (knowledge:read/write).
    Route("POST", "/api/chat/sessions", "chat", permission="chat:use"),
    Route("GET", "/api/chat/sessions", "chat", permission="chat:use"),
    Route("GET", "/api/chat/sessions/{session_id}", "chat", permission="chat:use"),
    Route("POST", "/api/chat/sessions/{session_id}/close", "chat", permission="chat:use"),
    Route("GET", "/api/chat/sessions/{session_id}/messages", "chat", permission="chat:use"),
    Route(
        "POST",
        "/api/chat/sessions/{session_id}/messages",
        "chat",
        permission="chat:use",
        sensitive=True,
    ),
    Route(
        "POST",
        "/api/chat/sessions/{session_id}/messages/{message_id}/resume",
        "chat",
        permission="chat:use",
    ),
    Route(
        "POST",
        "/api/chat/sessions/{session_id}/messages/{message_id}/feedback",
        "chat",
        permission="chat:use",
    ),
    Route("GET", "/api/chat/usage", "chat", permission="chat:use"),
    Route("POST", "/api/chat/documents", "chat", permission="knowledge:write"),
    Route("GET", "/api/chat/documents", "chat", permission="knowledge:read"),
    Route("GET", "/api/chat/documents/{document_id}", "chat", permission="knowledge:read"),
)

GROUPS: Final[tuple[str, ...]] = tuple(dict.fromkeys(route.group for route in ROUTES))

_BY_KEY: Final[dict[str, Route]] = {route.route_key: route for route in ROUTES}


@dataclass(frozen=True)
class RouteMatch:
    """What the table says about a request: the route and its path parameters, or, when the
    path exists only for other methods, ``route`` is None and ``allowed`` names them."""

    route: Route | None
    params: dict[str, str]
    allowed: tuple[str, ...]


def match(method: str, path: str, routes: Iterable[Route] = ROUTES) -> RouteMatch | None:
    """The route serving ``method path`` (the first in table order), or None if no route has
    this path at all. The local gateway and the test helpers all route through here."""
    wanted = method.upper()
    allowed: list[str] = []
    for route in routes:
        params = route.match(path)
        if params is None:
            continue
        if route.method == wanted:
            return RouteMatch(route, params, ())
        allowed.append(route.method)
    if not allowed:
        return None
    return RouteMatch(None, {}, tuple(sorted(set(allowed))))


def route_for_key(route_key: str) -> Route | None:
    """The table's route for an API Gateway ``routeKey`` (e.g. ``GET /api/plans``)."""
    return _BY_KEY.get(route_key)
