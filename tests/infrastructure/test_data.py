"""Aurora, its secrets and the DynamoDB tables."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.shared.constants import WEBHOOK_PROVIDERS, resource_names
from tests.infrastructure.conftest import Synthesis


def _one(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert len(resources) == 1
    return next(iter(resources.values()))


def test_aurora_is_encrypted_iam_authenticated_and_ships_pgvector_08(
    synthesis: Synthesis,
) -> None:
    cluster = _one(synthesis.resources("AWS::RDS::DBCluster", "Data"))["Properties"]
    assert cluster["StorageEncrypted"] is True
    assert cluster["EnableIAMDatabaseAuthentication"] is True
    assert cluster["Engine"] == "aurora-postgresql"
    major, minor = (int(part) for part in cluster["EngineVersion"].split(".")[:2])
    assert (major, minor) >= (17, 4) or (major == 16 and minor >= 8)


def test_no_database_instance_is_publicly_accessible(synthesis: Synthesis) -> None:
    instances = synthesis.resources("AWS::RDS::DBInstance", "Data")
    assert instances
    assert all(i["Properties"]["PubliclyAccessible"] is False for i in instances.values())


def test_database_subnets_are_the_isolated_ones(synthesis: Synthesis) -> None:
    group = _one(synthesis.resources("AWS::RDS::DBSubnetGroup", "Data"))["Properties"]
    imported = json.dumps(group["SubnetIds"])
    assert "isolatedSubnet" in imported
    assert "publicSubnet" not in imported
    assert "egressSubnet" not in imported


def test_only_the_functions_security_group_reaches_postgresql(synthesis: Synthesis) -> None:
    ingress = synthesis.resources("AWS::EC2::SecurityGroupIngress", "Data")
    groups = synthesis.resources("AWS::EC2::SecurityGroup", "Data")
    inline = [
        rule for g in groups.values() for rule in g["Properties"].get("SecurityGroupIngress", [])
    ]
    assert inline == []
    assert len(ingress) == 1
    rule = _one(ingress)["Properties"]
    ((cluster_id, cluster),) = synthesis.resources("AWS::RDS::DBCluster", "Data").items()
    assert cluster["Properties"]["Port"] == 5432
    port = {"Fn::GetAtt": [cluster_id, "Endpoint.Port"]}
    assert rule["FromPort"] == rule["ToPort"] == port
    assert rule["IpProtocol"] == "tcp"
    assert "CidrIp" not in rule
    assert "FunctionSecurityGroup" in json.dumps(rule["SourceSecurityGroupId"])


def test_dev_scales_to_zero_with_auto_pause(dev: Synthesis) -> None:
    cluster = _one(dev.resources("AWS::RDS::DBCluster", "Data"))["Properties"]
    scaling = cluster["ServerlessV2ScalingConfiguration"]
    assert scaling["MinCapacity"] == 0
    assert scaling["SecondsUntilAutoPause"] > 0


def test_prod_keeps_at_least_half_an_acu(prod: Synthesis) -> None:
    cluster = _one(prod.resources("AWS::RDS::DBCluster", "Data"))["Properties"]
    assert cluster["ServerlessV2ScalingConfiguration"]["MinCapacity"] >= 0.5
    assert "SecondsUntilAutoPause" not in cluster["ServerlessV2ScalingConfiguration"]


def test_prod_protects_and_retains_its_state(prod: Synthesis) -> None:
    cluster = _one(prod.resources("AWS::RDS::DBCluster", "Data"))
    assert cluster["Properties"]["DeletionProtection"] is True
    assert cluster["DeletionPolicy"] == "Retain"
    assert cluster["Properties"]["BackupRetentionPeriod"] >= 7
    stateful = [
        *prod.resources("AWS::DynamoDB::Table", "Data").values(),
        *prod.resources("AWS::SecretsManager::Secret", "Data").values(),
        *prod.resources("AWS::Cognito::UserPool", "Api").values(),
    ]
    assert stateful
    assert all(r["DeletionPolicy"] == "Retain" for r in stateful)
    tables = prod.resources("AWS::DynamoDB::Table", "Data").values()
    assert all(t["Properties"]["DeletionProtectionEnabled"] is True for t in tables)


def test_dev_can_be_torn_down(dev: Synthesis) -> None:
    cluster = _one(dev.resources("AWS::RDS::DBCluster", "Data"))
    assert cluster["Properties"]["DeletionProtection"] is False
    assert cluster["DeletionPolicy"] == "Delete"


def test_secrets_live_at_the_documented_names(synthesis: Synthesis) -> None:
    names = resource_names(synthesis.env)
    secrets = synthesis.resources("AWS::SecretsManager::Secret", "Data")
    found = {s["Properties"]["Name"] for s in secrets.values()}
    assert found == {
        names.db_secret,
        names.runtime_db_secret,
        *(names.webhook_secret(provider) for provider in WEBHOOK_PROVIDERS),
        names.leads_suppression_secret,
    }
    by_name = {s["Properties"]["Name"]: s["Properties"] for s in secrets.values()}
    runtime = json.loads(
        by_name[names.runtime_db_secret]["GenerateSecretString"]["SecretStringTemplate"]
    )
    assert runtime == {"username": names.runtime_db_role, "dbname": names.database_name}


@pytest.mark.parametrize(("env", "rotated"), [("dev", False), ("prod", True)])
def test_the_owner_secret_rotates_in_prod_only(
    env: str, rotated: bool, request: pytest.FixtureRequest
) -> None:
    synthesis: Synthesis = request.getfixturevalue(env)
    schedules = synthesis.resources("AWS::SecretsManager::RotationSchedule", "Data")
    assert bool(schedules) is rotated


def test_tables_are_on_demand_encrypted_with_pitr_and_ttl(synthesis: Synthesis) -> None:
    names = resource_names(synthesis.env)
    tables = {
        t["Properties"]["TableName"]: t["Properties"]
        for t in synthesis.resources("AWS::DynamoDB::Table", "Data").values()
    }
    expected = {
        names.locks_table: ("lock_id", "expires_at"),
        names.idempotency_table: ("id", "expiration"),
    }
    assert set(tables) == set(expected)
    for name, (key, ttl) in expected.items():
        table = tables[name]
        assert table["KeySchema"] == [{"AttributeName": key, "KeyType": "HASH"}]
        assert table["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["SSESpecification"]["SSEEnabled"] is True
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
