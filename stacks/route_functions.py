from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from lambdas.shared.routes import Route
from stacks.bundling import LambdaBundleConstruct
from stacks.constants import API_LAMBDA_TIMEOUT, CHAT_GROUP, EGRESS_GROUPS, WEBHOOK_GROUPS
from stacks.functions import ServiceFunctionConstruct


def route_groups(routes: Sequence[Route]) -> dict[str, str]:
    """Each route group, in table order, with the entry point that serves it."""
    groups: dict[str, str] = {}
    for route in routes:
        groups.setdefault(route.group, route.handler)
    return groups


class RouteFunctionsConstruct(Construct):
    """One function per route group of the route table.

    Only the chat group ships the LLM client (its own layer). It and the members group (Cognito's
    admin API) run in subnets with a route to the internet; every other group runs in the
    network's function subnets (isolated where the environment pays for interface endpoints).
    Only the billing group ships the
    Stripe SDK (its own layer).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        routes: Sequence[Route],
        bundle: LambdaBundleConstruct,
        vpc: ec2.IVpc,
        function_subnets: ec2.SubnetSelection,
        egress_subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, Mapping[str, str]],
        reserved_concurrency: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.functions: dict[str, ServiceFunctionConstruct] = {}
        for group, handler in route_groups(routes).items():
            chat = group == CHAT_GROUP
            self.functions[group] = ServiceFunctionConstruct(
                self,
                group.capitalize(),
                handler=handler,
                description=f"Routes of the {group} group",
                code=bundle.code,
                layers=bundle.layers_for(chat=chat, billing=group in WEBHOOK_GROUPS),
                vpc=vpc,
                subnets=egress_subnets if group in EGRESS_GROUPS else function_subnets,
                security_group=security_group,
                environment=environment[group],
                timeout=API_LAMBDA_TIMEOUT,
                reserved_concurrency=reserved_concurrency,
                log_retention=log_retention,
                removal_policy=removal_policy,
            )
