from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

EntitlementSource = Literal["plan", "trial"]


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentResponse(_Response):
    id: UUID
    slug: str
    name: str
    description: str
    category: str
    status: Literal["active", "beta"]
    version: str
    requires_approval: bool
    subnucleos: list[str]


class AgentPage(_Response):
    items: list[AgentResponse]
    next_cursor: str | None


class ActivationResponse(_Response):
    agent_id: UUID
    status: Literal["active", "deactivated"]
    source: EntitlementSource | None
    activated_at: datetime | None
    activated_by: UUID | None
    deactivated_at: datetime | None


class ActiveAgent(_Response):
    agent: AgentResponse
    source: EntitlementSource | None
    activated_at: datetime
    activated_by: UUID | None


class ActiveAgentList(_Response):
    items: list[ActiveAgent]
