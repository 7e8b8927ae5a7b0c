"""Least privilege, the network's endpoints, the schema custom resource and monitoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lambdas.migrations.ledger import RUNNER_VERSION
from lambdas.shared.migration_files import discover
from stacks.migrations import SCHEMA_RESOURCE_TYPE, migrations_fingerprint
from tests.infrastructure.conftest import Synthesis, as_list

# Actions AWS does not scope to resources; nothing else may use Resource "*".
UNSCOPABLE_ACTIONS = {
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:UnassignPrivateIpAddresses",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
}
DATA_SERVICES = ("dynamodb:", "secretsmanager:", "rds:", "rds-db:", "kms:")


def _identity_statements(synthesis: Synthesis) -> list[dict[str, Any]]:
    statements = []
    for policy_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for policy in synthesis.resources(policy_type).values():
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for role in synthesis.resources("AWS::IAM::Role").values():
        for inline in role["Properties"].get("Policies", []):
            statements += inline["PolicyDocument"]["Statement"]
    return statements


def test_no_identity_policy_grants_wildcard_actions(synthesis: Synthesis) -> None:
    statements = _identity_statements(synthesis)
    assert statements
    wildcards = [
        action
        for statement in statements
        for action in as_list(statement["Action"])
        if "*" in action
    ]
    assert wildcards == []


def test_resource_wildcards_only_for_unscopable_actions(synthesis: Synthesis) -> None:
    offending = [
        statement
        for statement in _identity_statements(synthesis)
        if "*" in as_list(statement.get("Resource", []))
        and not set(as_list(statement["Action"])) <= UNSCOPABLE_ACTIONS
    ]
    assert offending == []


def test_data_actions_name_their_resources(synthesis: Synthesis) -> None:
    for statement in _identity_statements(synthesis):
        actions = as_list(statement["Action"])
        if any(a.startswith(DATA_SERVICES) for a in actions):
            resources = as_list(statement["Resource"])
            assert "*" not in resources, statement
            assert all(not isinstance(r, str) or not r.endswith(":*") for r in resources)


def test_api_functions_never_scan_or_manage_tables(synthesis: Synthesis) -> None:
    actions = {
        action
        for statement in _identity_statements(synthesis)
        for action in as_list(statement["Action"])
        if action.startswith("dynamodb:")
    }
    # Query reads one partition (a tenant's activity feed); nothing scans a whole table.
    assert actions <= {
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }


def test_network_has_endpoints_instead_of_internet_for_aws_apis(synthesis: Synthesis) -> None:
    endpoints = synthesis.resources("AWS::EC2::VPCEndpoint", "Network").values()
    kinds = {
        (
            json.dumps(e["Properties"]["ServiceName"]),
            e["Properties"].get("VpcEndpointType", "Gateway"),
        )
        for e in endpoints
    }
    assert any("dynamodb" in name and kind == "Gateway" for name, kind in kinds)
    assert any(".s3" in name and kind == "Gateway" for name, kind in kinds)
    assert any("secretsmanager" in name and kind == "Interface" for name, kind in kinds)


def test_isolated_subnets_have_no_route_out(synthesis: Synthesis) -> None:
    network = synthesis.stack("Network")["Resources"]
    routes = [r["Properties"] for r in network.values() if r["Type"] == "AWS::EC2::Route"]
    for route in routes:
        table = route["RouteTableId"]["Ref"]
        assert "isolated" not in table, route


def test_schema_custom_resource_carries_the_migrations_fingerprint(synthesis: Synthesis) -> None:
    (resource,) = synthesis.resources(SCHEMA_RESOURCE_TYPE, "Migrations").values()
    props = resource["Properties"]
    assert props["MigrationsFingerprint"] == migrations_fingerprint(discover(), RUNNER_VERSION)
    assert set(props) == {"ServiceToken", "MigrationsFingerprint", "ServiceTimeout"}
    assert int(props["ServiceTimeout"]) <= 30 * 60


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir()
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_fingerprint_changes_with_a_file_content_a_name_or_the_runner(tmp_path: Path) -> None:
    # Given the same migrations in two folders
    base = {"001_a.sql": "select 1;", "002_b.sql": "select 2;"}
    original = migrations_fingerprint(discover(_write(tmp_path / "a", base)), "1")
    same = migrations_fingerprint(discover(_write(tmp_path / "b", base)), "1")
    # When one thing changes at a time
    edited = {**base, "002_b.sql": "select 3;"}
    renamed = {"001_a.sql": "select 1;", "002_c.sql": "select 2;"}
    # Then only those changes move the fingerprint
    assert same == original
    assert migrations_fingerprint(discover(_write(tmp_path / "c", edited)), "1") != original
    assert migrations_fingerprint(discover(_write(tmp_path / "d", renamed)), "1") != original
    assert migrations_fingerprint(discover(_write(tmp_path / "e", base)), "2") != original


def test_fingerprint_ignores_line_endings_the_runner_ignores(tmp_path: Path) -> None:
    lf = discover(_write(tmp_path / "lf", {"001_a.sql": "select 1;\nselect 2;\n"}))
    crlf = discover(_write(tmp_path / "crlf", {"001_a.sql": "select 1;\r\nselect 2;\r\n"}))
    assert migrations_fingerprint(lf, "1") == migrations_fingerprint(crlf, "1")


def test_alarms_cover_errors_latency_and_capacity_and_notify_the_topic(
    synthesis: Synthesis,
) -> None:
    alarms = synthesis.resources("AWS::CloudWatch::Alarm", "Monitoring")
    (topic_id,) = synthesis.resources("AWS::SNS::Topic", "Monitoring")
    names = " ".join(alarms)
    for expected in (
        "Api5xxRate",
        "ApiP99Latency",
        "AuroraAcuAtMax",
        "HealthErrors",
        "JobsErrors",
        "MigrationsErrors",
    ):
        assert expected in names
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    (topic,) = synthesis.resources("AWS::SNS::Topic", "Monitoring").values()
    assert "KmsMasterKeyId" in topic["Properties"]


def test_dashboard_shows_api_lambda_aurora_and_dynamodb(synthesis: Synthesis) -> None:
    (dashboard,) = synthesis.resources("AWS::CloudWatch::Dashboard", "Monitoring").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Latency",
        "5xx",
        "4xx",
        "Throttles",
        "InitDuration-health",
        "ServerlessDatabaseCapacity",
        "DatabaseConnections",
        "CPUUtilization",
        "WriteThrottleEvents",
    ):
        assert metric in body, metric
    assert "GET /health" in body
