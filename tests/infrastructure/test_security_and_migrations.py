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
    secrets = any("secretsmanager" in name and kind == "Interface" for name, kind in kinds)
    assert secrets == synthesis.interface_endpoints


def test_prod_routes_out_through_a_nat_gateway(prod: Synthesis) -> None:
    assert len(prod.resources("AWS::EC2::NatGateway", "Network")) == 1
    assert not prod.resources("AWS::EC2::Instance")


def test_dev_routes_out_through_a_small_hardened_nat_instance(dev: Synthesis) -> None:
    # the cheap egress of docs/deploy.md: no NAT gateway, no interface endpoint to pay for
    assert not dev.resources("AWS::EC2::NatGateway")
    assert not [
        e
        for e in dev.resources("AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Interface"
    ]
    ((name, instance),) = dev.resources("AWS::EC2::Instance", "Network").items()
    props = instance["Properties"]
    assert props["InstanceType"] == "t4g.nano"
    assert props["SourceDestCheck"] is False
    assert props["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert "dnf-automatic-install.timer" in json.dumps(props["UserData"])
    (template,) = dev.resources("AWS::EC2::LaunchTemplate", "Network").values()
    assert template["Properties"]["LaunchTemplateData"]["MetadataOptions"] == {
        "HttpTokens": "required"
    }
    (interface,) = props["NetworkInterfaces"]
    assert interface["AssociatePublicIpAddress"] is True
    # Nothing reaches it but the functions, and only on HTTPS; every private subnet's default
    # route is the instance
    network = dev.stack("Network")["Resources"]
    (nat_group,) = [g["Fn::GetAtt"][0] for g in interface["GroupSet"]]
    assert not network[nat_group]["Properties"].get("SecurityGroupIngress")
    ingress = [
        r["Properties"]
        for r in network.values()
        if r["Type"] == "AWS::EC2::SecurityGroupIngress"
        and r["Properties"]["GroupId"] == {"Fn::GetAtt": [nat_group, "GroupId"]}
    ]
    assert [(i["IpProtocol"], i["FromPort"], i["ToPort"]) for i in ingress] == [("tcp", 443, 443)]
    assert "FunctionSecurityGroup" in ingress[0]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
    routes = [r["Properties"] for r in network.values() if r["Type"] == "AWS::EC2::Route"]
    out = [r for r in routes if r.get("InstanceId") == {"Ref": name}]
    assert len(out) == 2  # the two egress subnets


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
