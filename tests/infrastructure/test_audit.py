"""The audit anchor bucket (S3 Object Lock, COMPLIANCE), its grants and its alarms."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.audit.anchors import LATEST_KEY
from lambdas.shared.settings import AuditSettings, JobSettings
from tests.infrastructure.conftest import Synthesis, as_list


def _bucket(synthesis: Synthesis) -> tuple[str, dict[str, Any]]:
    ((bucket_id, bucket),) = synthesis.resources("AWS::S3::Bucket", "Data").items()
    return bucket_id, bucket


@pytest.mark.parametrize(("env", "days"), [("dev", 1), ("prod", 400)])
def test_the_anchor_bucket_locks_every_object_in_compliance_mode(
    request: pytest.FixtureRequest, env: str, days: int
) -> None:
    synthesis: Synthesis = request.getfixturevalue(env)
    _, bucket = _bucket(synthesis)
    props = bucket["Properties"]

    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": days}},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_the_anchor_bucket_is_encrypted_private_and_tls_only(synthesis: Synthesis) -> None:
    bucket_id, bucket = _bucket(synthesis)
    props = bucket["Properties"]
    (policy,) = synthesis.resources("AWS::S3::BucketPolicy", "Data").values()

    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    denials = [
        s
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny"
        and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert denials
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}


def _s3_grants(synthesis: Synthesis, role_fragment: str) -> set[str]:
    actions: set[str] = set()
    for policy_id, policy in synthesis.resources("AWS::IAM::Policy", "Api").items():
        if role_fragment not in policy_id:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            s3_actions = [a for a in as_list(statement["Action"]) if a.startswith("s3:")]
            if s3_actions:
                assert LATEST_KEY in json.dumps(statement["Resource"])
                actions.update(s3_actions)
    return actions


def test_only_the_jobs_function_writes_anchors_and_the_audit_function_reads_them(
    synthesis: Synthesis,
) -> None:
    assert _s3_grants(synthesis, "Jobs") == {
        "s3:PutObject",
        "s3:PutObjectRetention",
        "s3:GetObject",
    }
    assert _s3_grants(synthesis, "Audit") == {"s3:GetObject"}
    assert _s3_grants(synthesis, "Agents") == set()


def _environment(synthesis: Synthesis, fragment: str) -> dict[str, Any]:
    (function,) = [
        f
        for name, f in synthesis.resources("AWS::Lambda::Function", "Api").items()
        if fragment in name and "Environment" in f["Properties"]
    ]
    variables: dict[str, Any] = function["Properties"]["Environment"]["Variables"]
    return variables


@pytest.mark.parametrize(
    ("fragment", "settings"), [("Audit", AuditSettings), ("Jobs", JobSettings)]
)
def test_the_audit_and_jobs_functions_get_the_bucket_their_settings_read(
    synthesis: Synthesis, fragment: str, settings: type[AuditSettings | JobSettings]
) -> None:
    variables = _environment(synthesis, fragment)
    resolved = {k: v if isinstance(v, str) else "token" for k, v in variables.items()}

    parsed = settings.model_validate(resolved)

    assert "AuditAnchorsBucket" in json.dumps(variables["AUDIT_ANCHOR_BUCKET"])
    assert parsed.audit_anchor_bucket == "token"


def test_alarms_watch_verification_failures_and_the_anchor_age(synthesis: Synthesis) -> None:
    alarms = synthesis.resources("AWS::CloudWatch::Alarm", "Monitoring")
    failures = next(a for n, a in alarms.items() if "AuditVerifyFailures" in n)["Properties"]
    age = next(a for n, a in alarms.items() if "AuditAnchorAge" in n)["Properties"]

    assert failures["MetricName"] == "AuditVerifyFailures"
    assert failures["Threshold"] == 1
    assert age["MetricName"] == "AuditAnchorAgeSeconds"
    # No age reported for a whole window means the anchoring job stopped.
    assert age["TreatMissingData"] == "breaching"
    assert age["Threshold"] == 45 * 60
    (dashboard,) = synthesis.resources("AWS::CloudWatch::Dashboard", "Monitoring").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "AuditVerifyFailures" in body
    assert "AuditAnchorAgeSeconds" in body
