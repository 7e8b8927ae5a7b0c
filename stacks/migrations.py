from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import cast

from aws_cdk import CfnElement, CustomResource, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from lambdas.migrations.ledger import RUNNER_VERSION
from lambdas.shared.migration_files import MigrationFile, discover
from stacks.bundling import LambdaBundleConstruct
from stacks.constants import (
    MIGRATION_LAMBDA_TIMEOUT,
    MIGRATION_RESERVED_CONCURRENCY,
    MIGRATION_SERVICE_TIMEOUT,
)
from stacks.functions import ServiceFunctionConstruct
from stacks.nag import acknowledge

MIGRATION_HANDLER = "lambdas.migrations.handler.lambda_handler"
SCHEMA_RESOURCE_TYPE = "Custom::AlquimistaSchema"


def migrations_fingerprint(files: Iterable[MigrationFile], runner_version: str) -> str:
    """A hash of the sorted migration file names, their contents and the runner version.

    It is the custom resource's only property: CloudFormation calls the runner again when, and
    only when, one of these changes.
    """
    digest = hashlib.sha256(f"runner:{runner_version}\n".encode())
    for migration in sorted(files, key=lambda f: f.filename):
        digest.update(f"{migration.filename}\n{migration.checksum}\n".encode())
    return digest.hexdigest()


class SchemaMigrationsConstruct(Construct):
    """The migration function and the custom resource (CDK Provider framework) that runs it on
    deploy. Anything that needs the current schema depends on ``self.resource``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bundle: LambdaBundleConstruct,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._log_retention = log_retention
        self._removal_policy = removal_policy
        self.fingerprint = migrations_fingerprint(discover(), RUNNER_VERSION)
        self.runner = ServiceFunctionConstruct(
            self,
            "Runner",
            handler=MIGRATION_HANDLER,
            description="Applies database/migrations (custom resource and operator actions)",
            code=bundle.code,
            layers=bundle.layers_for(chat=False),
            vpc=vpc,
            subnets=subnets,
            security_group=security_group,
            environment=environment,
            timeout=MIGRATION_LAMBDA_TIMEOUT,
            reserved_concurrency=MIGRATION_RESERVED_CONCURRENCY,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        self.provider = self._build_provider()
        self.resource = CustomResource(
            self,
            "Schema",
            service_token=self.provider.service_token,
            resource_type=SCHEMA_RESOURCE_TYPE,
            properties={"MigrationsFingerprint": self.fingerprint},
            service_timeout=MIGRATION_SERVICE_TIMEOUT,
        )

    def _build_provider(self) -> cr.Provider:
        log_group = logs.LogGroup(
            self,
            "ProviderLogGroup",
            retention=self._log_retention,
            removal_policy=self._removal_policy,
        )
        role = iam.Role(
            self,
            "ProviderRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Execution role: CloudFormation custom-resource provider for migrations",
        )
        log_group.grant_write(role)
        provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=self.runner.function,
            framework_on_event_role=role,
            log_group=log_group,
        )
        function = cast(CfnElement, self.runner.function.node.default_child)
        logical_id = Stack.of(self).resolve(Stack.of(self).get_logical_id(function))
        acknowledge(
            role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
            "The provider framework may invoke any version or alias of the one migration "
            "function; the wildcard is the qualifier only.",
        )
        return provider
