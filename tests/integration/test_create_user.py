"""scripts/create_user.py: Cognito (moto) + the migration Lambda's grant_membership action,
invoked in-process the way Lambda would run it."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, cast

import boto3
import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.migrations.handler import lambda_handler
from scripts.create_user import CreateUserFailed, create_user
from scripts.devstack.deployed import DeployedLookupError, find_stack_output
from scripts.devstack.gateway import LambdaContextStub


@pytest.fixture
def pool_id(aws) -> str:
    cognito = boto3.client("cognito-idp")
    pool = cognito.create_user_pool(
        PoolName="alquimista-dev",
        Schema=[{"Name": "tenant_id", "AttributeDataType": "String", "Mutable": True}],
    )
    return str(pool["UserPool"]["Id"])


def _invoke(payload: dict[str, Any]) -> Any:
    context = LambdaContextStub(
        function_name="alquimista-dev-migrations", deadline_ms=time.time() * 1000 + 60_000
    )
    return lambda_handler(payload, cast("LambdaContext", context))


def _attributes(pool_id: str, email: str) -> dict[str, str]:
    user = boto3.client("cognito-idp").admin_get_user(UserPoolId=pool_id, Username=email)
    return {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def test_a_user_gets_a_cognito_identity_a_membership_and_the_tenant_claim(
    lambda_env, pool_id, db
) -> None:
    email = f"ana-{uuid.uuid4().hex[:6]}@initech.example.com"

    result = create_user(
        cognito=boto3.client("cognito-idp"),
        invoke=_invoke,
        pool_id=pool_id,
        email=email,
        tenant="initech",
        tenant_name="Initech Ltda",
        role="admin",
        full_name="Ana",
    )

    attributes = _attributes(pool_id, email)
    assert attributes["custom:tenant_id"] == result["tenant_id"]
    assert attributes["sub"] == result["sub"]
    with db.owner() as conn:
        user = conn.execute(
            "SELECT cognito_sub::text AS sub FROM alquimista_platform.users WHERE email = %s",
            (email,),
        ).fetchone()
    assert user == {"sub": result["sub"]}


def test_running_it_again_reuses_the_cognito_user(lambda_env, pool_id) -> None:
    kwargs: dict[str, Any] = {
        "cognito": boto3.client("cognito-idp"),
        "invoke": _invoke,
        "pool_id": pool_id,
        "email": "bia@initech.example.com",
        "tenant": "initech",
        "tenant_name": "Initech Ltda",
        "full_name": None,
    }
    first = create_user(role="member", **kwargs)

    second = create_user(role="viewer", **kwargs)

    assert second["sub"] == first["sub"]
    assert second["role"] == "viewer"


def test_a_refused_membership_is_an_error_naming_the_cause(lambda_env, pool_id) -> None:
    with pytest.raises(CreateUserFailed, match="does not exist"):
        create_user(
            cognito=boto3.client("cognito-idp"),
            invoke=_invoke,
            pool_id=pool_id,
            email="caio@nowhere.example.com",
            tenant="nowhere",
            tenant_name=None,
            role="admin",
            full_name=None,
        )


def test_stack_outputs_are_found_by_environment(aws) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"UserPoolId": {"Value": "us-east-1_abc"}},
    }
    cloudformation = boto3.client("cloudformation")
    cloudformation.create_stack(StackName="Alquimista-dev-Api", TemplateBody=json.dumps(template))

    assert find_stack_output(cloudformation, "dev", "UserPoolId") == "us-east-1_abc"
    with pytest.raises(DeployedLookupError, match="Alquimista-prod-"):
        find_stack_output(cloudformation, "prod", "UserPoolId")
