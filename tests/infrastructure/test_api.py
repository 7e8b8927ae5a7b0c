"""The HTTP API against the route table, Cognito, and the functions behind it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import App

from lambdas.shared.constants import Environment
from lambdas.shared.routes import GROUPS, ROUTES
from stacks.config import EnvironmentConfig, load_config
from stacks.constants import EGRESS_GROUPS, WEBHOOK_GROUPS
from stacks.events import CONSUMER_HANDLER, RELAY_HANDLER
from stacks.jobs import JOBS_HANDLER
from stacks.knowledge import INGEST_HANDLER
from stacks.lead_imports import IMPORT_HANDLER
from stacks.migrations import MIGRATION_HANDLER
from stacks.packaging.base import REPO_ROOT
from stacks.platform import connection_budget
from tests.infrastructure.conftest import CHAT_ROUTE, Synthesis, as_list


def _routes(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in synthesis.resources("AWS::ApiGatewayV2::Route", "Api").values()
    }


def _python_functions(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {
        name: fn["Properties"]
        for name, fn in synthesis.resources("AWS::Lambda::Function").items()
        if fn["Properties"].get("Runtime", "").startswith("python")
        # ours; not CDK's own (the bucket-notification custom resource's ``index.handler``)
        and fn["Properties"].get("Handler", "").startswith("lambdas.")
    }


def _group_functions(synthesis: Synthesis) -> dict[str, dict[str, Any]]:
    return {
        props["Handler"].split(".")[1]: props
        for props in _python_functions(synthesis).values()
        if props["Handler"]
        not in (MIGRATION_HANDLER, JOBS_HANDLER, RELAY_HANDLER, CONSUMER_HANDLER)
    }


def test_every_route_of_the_table_exists_with_its_authorization(synthesis: Synthesis) -> None:
    routes = _routes(synthesis)
    authorizers = synthesis.resources("AWS::ApiGatewayV2::Authorizer", "Api")
    ((authorizer_id, authorizer),) = authorizers.items()
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    assert "cognito-idp" in json.dumps(authorizer["Properties"]["JwtConfiguration"]["Issuer"])
    for route in ROUTES:
        deployed = routes[route.route_key]
        if route.public:
            assert deployed.get("AuthorizationType", "NONE") == "NONE", route.route_key
            assert "AuthorizerId" not in deployed
        else:
            assert deployed["AuthorizationType"] == "JWT", route.route_key
            assert deployed["AuthorizerId"] == {"Ref": authorizer_id}


def test_unmatched_requests_reach_the_health_resolver_only_with_a_token(
    synthesis: Synthesis,
) -> None:
    default = _routes(synthesis)["$default"]
    assert default["AuthorizationType"] == "JWT"
    assert set(_routes(synthesis)) == {r.route_key for r in ROUTES} | {"$default"}


def test_one_integration_per_route_group(synthesis: Synthesis) -> None:
    integrations = synthesis.resources("AWS::ApiGatewayV2::Integration", "Api")
    assert len(integrations) == len(GROUPS)
    assert all(i["Properties"]["PayloadFormatVersion"] == "2.0" for i in integrations.values())


def test_stage_throttles_and_writes_json_access_logs(synthesis: Synthesis) -> None:
    (stage,) = synthesis.resources("AWS::ApiGatewayV2::Stage", "Api").values()
    props = stage["Properties"]
    config = load_config_for(synthesis)
    assert props["StageName"] == "$default"
    assert props["DefaultRouteSettings"]["ThrottlingRateLimit"] == config.api_rate_limit
    assert props["DefaultRouteSettings"]["ThrottlingBurstLimit"] == config.api_burst_limit
    assert props["DefaultRouteSettings"]["DetailedMetricsEnabled"] is True
    access_log = json.loads(props["AccessLogSettings"]["Format"])
    assert access_log["requestId"] == "$context.requestId"
    assert access_log["status"] == "$context.status"


def load_config_for(synthesis: Synthesis) -> EnvironmentConfig:
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    env: Environment = "prod" if synthesis.env == "prod" else "dev"
    return load_config(App(context=context).node, env)


@pytest.mark.parametrize(
    ("env", "origin"), [("dev", "http://localhost:3000"), ("prod", "https://app.alquimista.ai")]
)
def test_cors_allows_the_environment_origins(
    env: str, origin: str, request: pytest.FixtureRequest
) -> None:
    synthesis: Synthesis = request.getfixturevalue(env)
    (api,) = synthesis.resources("AWS::ApiGatewayV2::Api", "Api").values()
    cors = api["Properties"]["CorsConfiguration"]
    assert origin in cors["AllowOrigins"]
    assert "*" not in cors["AllowOrigins"]
    assert "authorization" in cors["AllowHeaders"]


def test_user_pool_is_admin_only_and_prod_requires_mfa(synthesis: Synthesis) -> None:
    (pool,) = synthesis.resources("AWS::Cognito::UserPool", "Api").values()
    props = pool["Properties"]
    assert props["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert props["MfaConfiguration"] == ("ON" if synthesis.env == "prod" else "OPTIONAL")
    (client,) = synthesis.resources("AWS::Cognito::UserPoolClient", "Api").values()
    assert "custom:tenant_id" not in client["Properties"]["WriteAttributes"]
    assert "custom:tenant_id" in client["Properties"]["ReadAttributes"]


def test_a_function_per_group_plus_migrations_all_python313_arm64(synthesis: Synthesis) -> None:
    functions = _python_functions(synthesis)
    handlers = sorted(f["Handler"] for f in functions.values())
    expected = sorted(
        {r.handler for r in ROUTES}
        | {MIGRATION_HANDLER, JOBS_HANDLER, RELAY_HANDLER, CONSUMER_HANDLER}
        | {INGEST_HANDLER, IMPORT_HANDLER},  # S3-event ingestion of documents and lead CSVs
    )
    assert handlers == expected
    for props in functions.values():
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "alquimista"
        assert props["VpcConfig"]["SubnetIds"]


def test_each_function_has_its_own_role(synthesis: Synthesis) -> None:
    roles = [json.dumps(f["Role"]) for f in _python_functions(synthesis).values()]
    assert len(roles) == len(set(roles))


def test_api_functions_use_the_runtime_role_secret(synthesis: Synthesis) -> None:
    for group, props in _group_functions(synthesis).items():
        variables = props["Environment"]["Variables"]
        assert variables["APP_ENV"] == synthesis.env
        assert "RuntimeSecret" in json.dumps(variables["DB_SECRET_ARN"]), group
        assert "MASTER_SECRET_ARN" not in variables


def test_migration_function_gets_owner_and_runtime_secrets(synthesis: Synthesis) -> None:
    (props,) = [
        p for p in _python_functions(synthesis).values() if p["Handler"] == MIGRATION_HANDLER
    ]
    variables = props["Environment"]["Variables"]
    assert "MasterSecret" in json.dumps(variables["MASTER_SECRET_ARN"])
    assert "RuntimeSecret" in json.dumps(variables["RUNTIME_SECRET_ARN"])
    assert props["Timeout"] == 900


def test_reserved_concurrency_stays_below_aurora_connections(synthesis: Synthesis) -> None:
    total = sum(f["ReservedConcurrentExecutions"] for f in _python_functions(synthesis).values())
    assert 0 < total <= connection_budget(load_config_for(synthesis))


def test_only_chat_ships_openai_and_chat_always_reaches_the_internet(with_chat: Synthesis) -> None:
    functions = _group_functions(with_chat)
    assert set(functions) == {*GROUPS, CHAT_ROUTE.group}
    for group, props in functions.items():
        subnets = json.dumps(props["VpcConfig"]["SubnetIds"])
        if group == CHAT_ROUTE.group:
            assert len(props["Layers"]) == 2
            assert "egressSubnet" in subnets
            assert "isolatedSubnet" not in subnets
        elif group in EGRESS_GROUPS:
            # the members group calls Cognito's admin API: a route out, but no openai
            assert len(props["Layers"]) == 1
            assert "egressSubnet" in subnets
            assert "isolatedSubnet" not in subnets
        else:
            # billing ships the Stripe SDK in a layer of its own, never openai
            assert len(props["Layers"]) == (2 if group in WEBHOOK_GROUPS else 1)
            assert with_chat.function_subnet in subnets


def test_in_prod_only_the_egress_groups_have_a_route_out(prod: Synthesis) -> None:
    # prod pays for interface endpoints so that only chat and members (Cognito's admin API)
    # route out
    assert prod.interface_endpoints
    functions = _python_functions(prod)
    assert len(functions) > len(GROUPS)  # route groups, jobs, migrations, relay, consumer
    for props in functions.values():
        subnets = json.dumps(props["VpcConfig"]["SubnetIds"])
        # the route functions of the egress groups, and chat's ingestion (it embeds through the
        # provider); the leads CSV ingestion stays isolated
        egress = {r.handler for r in ROUTES if r.group in EGRESS_GROUPS} | {INGEST_HANDLER}
        routed_out = "egressSubnet" in subnets
        assert routed_out == (props["Handler"] in egress), props["Handler"]
        assert routed_out != ("isolatedSubnet" in subnets), props["Handler"]


def test_trial_expiry_runs_hourly_on_the_jobs_function_with_the_lock_table(
    synthesis: Synthesis,
) -> None:
    (jobs_name,) = [
        name
        for name, props in _python_functions(synthesis).items()
        if props["Handler"] == JOBS_HANDLER
    ]
    jobs = _python_functions(synthesis)[jobs_name]
    rules = synthesis.resources("AWS::Events::Rule", "Api").values()
    (rule,) = [r["Properties"] for r in rules if "expire_trials" in json.dumps(r["Properties"])]
    assert rule["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rule["Targets"]
    assert json.loads(target["Input"]) == {"job": "expire_trials"}
    assert jobs_name in json.dumps(target["Arn"])
    variables = jobs["Environment"]["Variables"]
    assert "LOCKS_TABLE_NAME" in variables
    assert "RuntimeSecret" in json.dumps(variables["DB_SECRET_ARN"])
    assert jobs["ReservedConcurrentExecutions"] == 1


def test_groups_with_idempotent_routes_get_the_table_and_may_write_it(
    synthesis: Synthesis,
) -> None:
    # An Idempotency-Key is honoured only where the function knows the table: a group with an
    # idempotent route but no table would silently run every replay again.
    groups = {r.group for r in ROUTES if r.method != "GET" and r.accepts_idempotency_key}
    functions = _group_functions(synthesis)
    policies = synthesis.resources("AWS::IAM::Policy", "Api").values()
    assert groups
    for group in groups:
        props = functions[group]
        assert "IDEMPOTENCY_TABLE_NAME" in props["Environment"]["Variables"], group
        role = {"Ref": props["Role"]["Fn::GetAtt"][0]}
        writes = [
            statement
            for policy in policies
            if role in policy["Properties"]["Roles"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if "dynamodb:PutItem" in as_list(statement["Action"])
            and "Idempotency" in json.dumps(statement["Resource"])
        ]
        assert writes, group


def test_only_the_members_function_may_invite_into_the_user_pool(synthesis: Synthesis) -> None:
    (pool_id,) = synthesis.resources("AWS::Cognito::UserPool", "Api")
    grants: dict[str, list[dict[str, Any]]] = {}
    for policy_id, policy in synthesis.resources("AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            if any(action.startswith("cognito-idp:") for action in actions):
                grants.setdefault(policy_id, []).append(statement)

    ((policy_id, statements),) = grants.items()
    assert policy_id.startswith("FunctionsMembers")
    (statement,) = statements
    assert sorted(as_list(statement["Action"])) == [
        "cognito-idp:AdminCreateUser",
        "cognito-idp:AdminGetUser",
    ]
    assert statement["Resource"] == {"Fn::GetAtt": [pool_id, "Arn"]}


def test_the_members_function_knows_the_stacks_user_pool(synthesis: Synthesis) -> None:
    (pool_id,) = synthesis.resources("AWS::Cognito::UserPool", "Api")
    members = _group_functions(synthesis)["members"]

    assert members["Environment"]["Variables"]["USER_POOL_ID"] == {"Ref": pool_id}
