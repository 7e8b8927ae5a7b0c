"""The leads imports construct on its own stack: a private, TLS-only, expiring bucket, the
ingestion function notified for new CSV objects, least-privilege grants, and cdk-nag clean."""

from __future__ import annotations

from stacks.toolchain import use_project_node

use_project_node()

import contextlib  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402
from aws_cdk import App, RemovalPolicy, Stack, Validations  # noqa: E402
from aws_cdk import aws_ec2 as ec2  # noqa: E402
from aws_cdk import aws_lambda as lambda_  # noqa: E402
from aws_cdk import aws_logs as logs  # noqa: E402
from aws_cdk import aws_secretsmanager as secretsmanager  # noqa: E402
from aws_cdk.assertions import Match, Template  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from lambdas.shared.settings import LeadsSettings  # noqa: E402
from stacks.lead_imports import IMPORT_HANDLER, LeadImportsConstruct  # noqa: E402


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Template, Path, dict[str, Any]]:
    outdir = tmp_path_factory.mktemp("lead-imports")
    app = App(outdir=str(outdir))
    stack = Stack(app, "ImportsStack")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    ])  # fmt: skip
    imports = LeadImportsConstruct(
        stack,
        "LeadImports",
        code=lambda_.Code.from_inline("def lambda_handler(event, context):\n    return {}\n"),
        layers=[],
        vpc=vpc,
        subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
        security_group=ec2.SecurityGroup(stack, "Sg", vpc=vpc),
        environment={"APP_ENV": "dev", "DB_SECRET_ARN": "arn:aws:secretsmanager:::secret:db"},
        suppression_key=secretsmanager.Secret(stack, "SuppressionKey"),
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=RemovalPolicy.DESTROY,
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with contextlib.suppress(RuntimeError):  # findings are read from the report below
        app.synth()
    template = json.loads((outdir / "ImportsStack.template.json").read_text())
    env = imports.environment()
    return Template.from_json(template), outdir, {"env": env, "template": template}


def test_the_bucket_is_private_tls_only_and_expires_uploads(synthesized) -> None:
    template, _, _ = synthesized

    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": Match.any_value(),
            "LifecycleConfiguration": {
                "Rules": Match.array_with([Match.object_like({"ExpirationInDays": 7})])
            },
        },
    )
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with([
                    Match.object_like({
                        "Effect": "Deny",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    })
                ])
            }
        },
    )  # fmt: skip


def test_new_csv_objects_under_imports_notify_the_ingestion_function(synthesized) -> None:
    template, _, _ = synthesized

    template.has_resource_properties("AWS::Lambda::Function", {"Handler": IMPORT_HANDLER})
    template.has_resource_properties(
        "Custom::S3BucketNotifications",
        {
            "NotificationConfiguration": {
                "LambdaFunctionConfigurations": [
                    Match.object_like({
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": Match.array_with([
                            {"Name": "suffix", "Value": ".csv"},
                            {"Name": "prefix", "Value": "imports/"},
                        ])}},
                    })
                ]
            }
        },
    )  # fmt: skip


def test_the_ingestion_role_reads_only_the_uploads_and_the_key(synthesized) -> None:
    _, _, found = synthesized
    policies = [
        r for r in found["template"]["Resources"].values() if r["Type"] == "AWS::IAM::Policy"
    ]
    statements = [
        s
        for p in policies
        if "Ingestion" in json.dumps(p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }

    assert "s3:PutObject" not in actions
    assert "s3:DeleteObject*" not in actions
    assert {"s3:GetObject", "secretsmanager:GetSecretValue"} <= actions
    assert "imports/*" in json.dumps(statements)


def test_the_function_environment_satisfies_its_settings(synthesized) -> None:
    _, _, found = synthesized
    (function,) = [
        r
        for r in found["template"]["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == IMPORT_HANDLER
    ]
    variables = function["Properties"]["Environment"]["Variables"]

    settings = LeadsSettings.model_validate(
        {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
    )
    assert settings.imports_bucket
    assert settings.suppression_secret_id


def test_the_construct_is_cdk_nag_clean(synthesized) -> None:
    _, outdir, _ = synthesized
    report = outdir / "validation-report.json"
    findings = []
    if report.exists():
        for plugin in json.loads(report.read_text())["pluginReports"]:
            for violation in plugin["violations"]:
                for construct in violation["violatingConstructs"]:
                    path = construct["constructPath"]
                    if "/LeadImports/" in path or "BucketNotificationsHandler" in path:
                        findings.append((violation["ruleName"], path))

    assert findings == []
