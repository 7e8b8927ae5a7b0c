"""Public capture forms: their definition and a submission, as routes and services use them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

FormField = Literal["full_name", "email", "phone", "company", "job_title"]


class FormDefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    fields: list[FormField] = Field(min_length=1, max_length=5)
    required_fields: list[FormField] = Field(default_factory=list, max_length=5)
    consent_text: str = Field(min_length=1, max_length=5000)
    consent_text_version: str = Field(min_length=1, max_length=100)
    purposes: list[str] = Field(min_length=1, max_length=20)
    campanha_id: UUID | None = None
    max_per_ip_per_hour: int = Field(default=10, ge=1, le=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> FormDefinitionIn:
        if not set(self.required_fields) <= set(self.fields):
            raise ValueError("required_fields must be among fields")
        if not {"email", "phone"} & set(self.fields):
            raise ValueError("a form asks for an e-mail or a phone")
        return self


class FormDefinition(FormDefinitionIn):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    tenant_id: UUID
    active: bool
    created_at: datetime
    updated_at: datetime


class FormSubmissionIn(BaseModel):
    """What the form posts: the fields it asks for, and the consent given to the text version
    shown (which must be the form's current one)."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[FormField, Annotated[str, Field(max_length=320)]] = Field(max_length=5)
    consent: bool
    consent_text_version: str = Field(min_length=1, max_length=100)


class FormSubmissionReceipt(BaseModel):
    submission_id: UUID
    status: Literal["received"] = "received"
