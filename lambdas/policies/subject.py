"""What the gate authorizes: a ``Subject``. Apart from the matcher (and its RE2 engine) so that a
handler that builds subjects but never evaluates a rule itself does not load the engine at cold
start."""

from __future__ import annotations

import math
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

SubjectKind = Literal["chat.message", "agent.action", "lead.outreach"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("chat.message", "agent.action", "lead.outreach")
Role = Literal["viewer", "member", "admin"]

CHARS_PER_TOKEN = 4  # the estimate when the caller does not count tokens itself


class Subject(BaseModel):
    """What is being authorized: its kind and id, the acting agent and action, the text that
    would leave the platform, and who asks. ``text`` is only read, never persisted."""

    model_config = ConfigDict(frozen=True)

    kind: SubjectKind
    id: str | None = Field(default=None, min_length=1, max_length=200)
    text: str = ""
    agent_id: UUID | None = None
    agent_category: str | None = None
    action_type: str | None = None
    estimated_tokens: int | None = Field(default=None, ge=0)
    requester_roles: frozenset[str] = frozenset()

    @property
    def tokens(self) -> int:
        if self.estimated_tokens is not None:
            return self.estimated_tokens
        return math.ceil(len(self.text) / CHARS_PER_TOKEN)
