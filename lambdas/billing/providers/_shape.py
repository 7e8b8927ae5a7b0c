"""Validation of a provider's JSON into our models, with the API's 422 error shape."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from lambdas.shared.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


class ProviderObject(BaseModel):
    # Providers add fields over time; the signature, not the schema, is what we trust.
    model_config = ConfigDict(extra="ignore", frozen=True)


def validate(model: type[M], value: Any, *, where: tuple[str, ...] = ("body",)) -> M:
    try:
        return model.model_validate(value)
    except ValidationError as error:
        details = [
            {"loc": [*where, *map(str, err["loc"])], "msg": err["msg"], "type": err["type"]}
            for err in error.errors()
        ]
        raise ValidationFailed(
            "the webhook event is not in the provider's shape", details=details
        ) from None
