"""The identity directory on a Cognito user pool (AdminCreateUser; locally moto's Cognito)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final
from uuid import UUID

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.members.service import Account, EmailRejected, IdentityProviderUnavailable
from lambdas.shared.constants import TENANT_CLAIM
from lambdas.shared.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_cognito_idp import CognitoIdentityProviderClient
    from mypy_boto3_cognito_idp.type_defs import AttributeTypeTypeDef

# What the function's role may call on its user pool (stacks/platform.py grants exactly these).
COGNITO_ACTIONS: Final = ("cognito-idp:AdminCreateUser", "cognito-idp:AdminGetUser")


def _sub(attributes: list[AttributeTypeTypeDef]) -> UUID:
    for attribute in attributes:
        if attribute["Name"] == "sub":
            return UUID(attribute["Value"])
    raise LookupError("the Cognito user has no sub attribute")


class CognitoDirectory:
    def __init__(self, client: CognitoIdentityProviderClient, *, user_pool_id: str) -> None:
        self._client = client
        self._pool = user_pool_id

    def invite(self, email: str, *, tenant_id: UUID) -> Account:
        try:
            created = self._client.admin_create_user(
                UserPoolId=self._pool,
                Username=email,
                UserAttributes=[
                    {"Name": "email", "Value": email},
                    {"Name": "email_verified", "Value": "true"},
                    {"Name": TENANT_CLAIM, "Value": str(tenant_id)},
                ],
                DesiredDeliveryMediums=["EMAIL"],
            )
            return Account(sub=_sub(created["User"].get("Attributes", [])), created=True)
        except self._client.exceptions.UsernameExistsException:
            return self._existing(email)
        except self._client.exceptions.InvalidParameterException as error:
            logger.info("Cognito refused an invitation", extra={"error": _code(error)})
            raise EmailRejected("the identity provider refused this e-mail address") from error
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error

    def _existing(self, email: str) -> Account:
        try:
            user = self._client.admin_get_user(UserPoolId=self._pool, Username=email)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        return Account(sub=_sub(user.get("UserAttributes", [])), created=False)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))


def _unavailable(error: ClientError | BotoCoreError) -> IdentityProviderUnavailable:
    code = _code(error) if isinstance(error, ClientError) else type(error).__name__
    logger.warning("Cognito call failed", extra={"error": code})
    return IdentityProviderUnavailable("the identity provider is unavailable; retry shortly")
