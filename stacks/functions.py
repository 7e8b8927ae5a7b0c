from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constants import (
    LAMBDA_ARCHITECTURE,
    LAMBDA_LOGGING_FORMAT,
    LAMBDA_MEMORY_MB,
    LAMBDA_RUNTIME,
    LAMBDA_TRACING,
    POWERTOOLS_ENVIRONMENT,
)
from stacks.nag import acknowledge

# Lambda manages the ENIs of VPC functions; these EC2 actions do not take resource ARNs.
_ENI_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


class ServiceFunctionConstruct(Construct):
    """One Python function with the platform's defaults, its own log group and its own role.

    The role starts with nothing but its log group, its ENIs and X-Ray; whoever composes the
    function grants it the data it needs.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        description: str,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        timeout: Duration,
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        memory_mb: int = LAMBDA_MEMORY_MB,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal_policy
        )
        self.role = self._build_role(description)
        self.function = lambda_.Function(
            self,
            "Function",
            description=description,
            handler=handler,
            code=code,
            layers=list(layers),
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            memory_size=memory_mb,
            timeout=timeout,
            role=self.role,
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[security_group],
            environment={**POWERTOOLS_ENVIRONMENT, **environment},
            tracing=LAMBDA_TRACING,
            logging_format=LAMBDA_LOGGING_FORMAT,
            log_group=self.log_group,
            reserved_concurrent_executions=reserved_concurrency,
        )
        self._acknowledge_findings()

    def _build_role(self, description: str) -> iam.Role:
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role: {description}",
        )
        self.log_group.grant_write(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(_ENI_ACTIONS), resources=["*"])
        )
        return role

    def _acknowledge_findings(self) -> None:
        policy = self.role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "VPC network-interface actions and X-Ray's PutTraceSegments/PutTelemetryRecords "
            "do not support resource-level permissions; everything else is scoped.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.13 is the platform's runtime: the dependency layer is built for cp313 "
            "aarch64 wheels; moving runtimes is a deliberate upgrade, not a drift.",
        )
