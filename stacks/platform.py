"""The stacks of one environment, ``Alquimista-<env>-<Part>``, and how they meet.

Stacks only compose constructs and wire grants; references between stacks are passed
explicitly as constructor arguments (CDK turns them into exports and imports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.members.cognito import COGNITO_ACTIONS
from lambdas.shared.constants import ResourceNames, resource_names
from lambdas.shared.routes import ROUTES, Route
from lambdas.shared.settings import (
    ActivitySettings,
    ApiSettings,
    AuditSettings,
    BillingSettings,
    ChatSettings,
    JobSettings,
    LeadsSettings,
    MembersSettings,
    MigrationSettings,
    environment_variables,
)
from stacks.api import STAGE_NAME, HttpApiConstruct
from stacks.audit import AuditAnchorConstruct
from stacks.bundling import LambdaBundleConstruct
from stacks.config import ConfigError, EnvironmentConfig
from stacks.constants import (
    ACTIVITY_GROUP,
    AUDIT_ANCHOR_READERS,
    CHAT_GROUP,
    JOB_SCHEDULES,
    JOBS_GROUP,
    LAMBDA_CONNECTION_SHARE,
    LEADS_GROUP,
    MEMBERS_GROUP,
    MIGRATION_RESERVED_CONCURRENCY,
    READ_ONLY_GROUPS,
    SUPPRESSION_KEY_GROUPS,
    WEBHOOK_GROUPS,
    aurora_max_connections,
)
from stacks.database import DatabaseConstruct
from stacks.events import (
    RELAY_RESERVED_CONCURRENCY,
    OutboxEventsConstruct,
    outbox_alarms,
    outbox_widgets,
)
from stacks.functions import ServiceFunctionConstruct
from stacks.identity import IdentityConstruct
from stacks.jobs import JOBS_RESERVED_CONCURRENCY, ScheduledJobsConstruct
from stacks.knowledge import KnowledgeBaseConstruct
from stacks.lead_imports import LeadImportsConstruct
from stacks.migrations import SchemaMigrationsConstruct
from stacks.monitoring import MonitoringConstruct
from stacks.network import NetworkConstruct
from stacks.outreach import grant_send_email
from stacks.route_functions import RouteFunctionsConstruct, route_groups
from stacks.secrets import ProviderSecretsConstruct, SuppressionKeyConstruct
from stacks.tables import TablesConstruct

# What the functions may do on a DynamoDB item table: no scans, no table management.
ITEM_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


def _stack_props(config: EnvironmentConfig, description: str) -> dict[str, Any]:
    return {
        "env": config.cdk_environment,
        "description": f"Alquimista {config.env}: {description}",
        "termination_protection": config.is_production,
    }


class NetworkStack(Stack):
    def __init__(self, scope: Construct, config: EnvironmentConfig) -> None:
        super().__init__(
            scope, config.stack_name("Network"), **_stack_props(config, "VPC and endpoints")
        )
        self.network = NetworkConstruct(
            self,
            "Network",
            availability_zones=config.availability_zones,
            nat_gateways=config.nat_gateways,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
            nat=config.nat,
            nat_instance_type=config.nat_instance_type,
            function_egress=config.function_egress,
        )


class DataStack(Stack):
    def __init__(
        self, scope: Construct, config: EnvironmentConfig, *, network: NetworkConstruct
    ) -> None:
        super().__init__(
            scope, config.stack_name("Data"), **_stack_props(config, "Aurora, DynamoDB, secrets")
        )
        names = resource_names(config.env)
        self.database = DatabaseConstruct(
            self,
            "Database",
            names=names,
            vpc=network.vpc,
            subnets=network.isolated_subnets,
            client_security_group=network.function_security_group,
            min_acu=config.aurora_min_acu,
            max_acu=config.aurora_max_acu,
            auto_pause=Duration.minutes(config.aurora_auto_pause_minutes),
            readers=config.aurora_readers,
            backup_retention=Duration.days(config.backup_retention_days),
            deletion_protection=config.deletion_protection,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
            master_rotation=(
                Duration.days(config.master_rotation_days) if config.master_rotation_days else None
            ),
        )
        self.tables = TablesConstruct(
            self,
            "Tables",
            names=names,
            removal_policy=config.removal_policy,
            deletion_protection=config.deletion_protection,
        )
        self.provider_secrets = ProviderSecretsConstruct(
            self, "ProviderSecrets", names=names, removal_policy=config.removal_policy
        )
        self.suppression_key = SuppressionKeyConstruct(
            self, "SuppressionKey", names=names, removal_policy=config.removal_policy
        )
        self.audit_anchors = AuditAnchorConstruct(
            self, "AuditAnchors", retention=Duration.days(config.audit_anchor_retention_days)
        )
        CfnOutput(
            self,
            "DbSecretArn",
            value=self.database.master_secret.secret_arn,
            description="Owner credentials of the Aurora cluster (migrations, operators)",
        )
        CfnOutput(
            self,
            "AuditAnchorBucketName",
            value=self.audit_anchors.bucket.bucket_name,
            description="Object Lock bucket of the audit chain anchors (scripts/audit.py)",
        )
        CfnOutput(
            self,
            "RuntimeDbSecretArn",
            value=self.database.runtime_secret.secret_arn,
            description="Credentials of the runtime role the API functions use",
        )


def _grant_items(table: dynamodb.ITable, grantee: iam.IGrantable) -> None:
    table.grant(grantee, *ITEM_ACTIONS)


class MigrationsStack(Stack):
    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        *,
        network: NetworkConstruct,
        data: DataStack,
    ) -> None:
        super().__init__(
            scope,
            config.stack_name("Migrations"),
            **_stack_props(config, "schema migrations (custom resource)"),
        )
        database = data.database
        bundle = LambdaBundleConstruct(self, "Bundle", with_chat_layer=False)
        self.migrations = SchemaMigrationsConstruct(
            self,
            "Migrations",
            bundle=bundle,
            vpc=network.vpc,
            subnets=network.function_subnets,
            security_group=network.function_security_group,
            environment=environment_variables(
                MigrationSettings,
                environment=config.env,
                master_secret_id=database.master_secret.secret_arn,
                runtime_secret_id=database.runtime_secret.secret_arn,
            ),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        # The cluster must accept connections before the runner tries: wait for its writer.
        self.migrations.resource.node.add_dependency(database.cluster)
        runner = self.migrations.runner.role
        database.master_secret.grant_read(runner)
        database.runtime_secret.grant_read(runner)
        CfnOutput(
            self,
            "MigrationFunctionName",
            value=self.migrations.runner.function.function_name,
            description="Invoke with {'action': 'status'|'plan'|'apply'} (scripts/migrate.py)",
        )


def api_environment(
    group: str,
    config: EnvironmentConfig,
    data: DataStack,
    names: ResourceNames,
    *,
    user_pool_id: str | None = None,
    knowledge: KnowledgeBaseConstruct | None = None,
) -> dict[str, str]:
    """What the group's settings read (lambdas/shared/settings.py), by field name."""
    values: dict[str, str] = {
        "environment": config.env,
        "db_secret_id": data.database.runtime_secret.secret_arn,
        "db_application_name": f"alquimista-{group}",
    }
    model: type[ApiSettings] = ApiSettings
    if group not in READ_ONLY_GROUPS:
        values["idempotency_table"] = names.idempotency_table
    if group == JOBS_GROUP:
        model, values["locks_table"] = JobSettings, names.locks_table
    if group in WEBHOOK_GROUPS:
        model = BillingSettings
        for provider, secret in data.provider_secrets.webhook_secrets.items():
            values[f"{provider}_webhook_secret_id"] = secret.secret_arn
    if group in AUDIT_ANCHOR_READERS:
        model = AuditSettings if group != JOBS_GROUP else JobSettings
        values["audit_anchor_bucket"] = data.audit_anchors.bucket.bucket_name
        values["audit_anchor_retention_days"] = str(config.audit_anchor_retention_days)
    if group == ACTIVITY_GROUP:
        model = ActivitySettings
        values["activity_table"] = names.activity_table
    if group in SUPPRESSION_KEY_GROUPS:
        model = LeadsSettings
        values["suppression_secret_id"] = data.suppression_key.secret.secret_arn
    if group == MEMBERS_GROUP:
        model = MembersSettings
        values["user_pool_id"] = user_pool_id or ""
    if group == CHAT_GROUP and knowledge is not None:
        model = ChatSettings
        values["documents_bucket"] = knowledge.bucket.bucket_name
        values["llm_secret_id"] = knowledge.llm_secret.secret_arn
    return environment_variables(model, **values)


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        *,
        network: NetworkConstruct,
        data: DataStack,
        migrations: MigrationsStack,
        routes: Sequence[Route],
    ) -> None:
        super().__init__(
            scope, config.stack_name("Api"), **_stack_props(config, "HTTP API, Cognito, functions")
        )
        names = resource_names(config.env)
        groups = route_groups(routes)
        bundle = LambdaBundleConstruct(self, "Bundle", with_chat_layer=CHAT_GROUP in groups)
        self.knowledge = (
            KnowledgeBaseConstruct(
                self,
                "Knowledge",
                names=names,
                cors_origins=config.cors_origins,
                removal_policy=config.removal_policy,
            )
            if CHAT_GROUP in groups
            else None
        )
        self.identity = IdentityConstruct(
            self,
            "Identity",
            env=config.env,
            mfa_required=config.mfa_required,
            removal_policy=config.removal_policy,
            deletion_protection=config.deletion_protection,
        )
        # The leads function signs presigned POSTs into the imports bucket its ingestion reads.
        self.lead_imports = (
            LeadImportsConstruct(
                self,
                "LeadImports",
                code=bundle.code,
                layers=bundle.layers_for(chat=False, billing=False),
                vpc=network.vpc,
                subnets=network.function_subnets,
                security_group=network.function_security_group,
                environment=api_environment(LEADS_GROUP, config, data, names),
                suppression_key=data.suppression_key.secret,
                log_retention=config.log_retention,
                removal_policy=config.removal_policy,
            )
            if LEADS_GROUP in groups
            else None
        )
        imports_environment = self.lead_imports.environment() if self.lead_imports else {}
        self.route_functions = RouteFunctionsConstruct(
            self,
            "Functions",
            routes=routes,
            bundle=bundle,
            vpc=network.vpc,
            function_subnets=network.function_subnets,
            egress_subnets=network.egress_subnets,
            security_group=network.function_security_group,
            environment={
                group: {
                    **api_environment(
                        group,
                        config,
                        data,
                        names,
                        user_pool_id=self.identity.user_pool.user_pool_id,
                        knowledge=self.knowledge,
                    ),
                    **(
                        {
                            **imports_environment,
                            **environment_variables(
                                LeadsSettings, outreach_sender=config.outreach_sender
                            ),
                        }
                        if group == LEADS_GROUP
                        else {}
                    ),
                }
                for group in groups
            },
            reserved_concurrency=config.api_reserved_concurrency,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.jobs = ScheduledJobsConstruct(
            self,
            "Jobs",
            schedules=JOB_SCHEDULES,
            bundle=bundle,
            vpc=network.vpc,
            subnets=network.function_subnets,
            security_group=network.function_security_group,
            environment=api_environment(JOBS_GROUP, config, data, names),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        self.events = OutboxEventsConstruct(
            self,
            "Events",
            names=names,
            bundle=bundle,
            vpc=network.vpc,
            subnets=network.function_subnets,
            interface_endpoint=network.interface_endpoints,
            security_group=network.function_security_group,
            database_environment=environment_variables(
                ApiSettings,
                environment=config.env,
                db_secret_id=data.database.runtime_secret.secret_arn,
                db_application_name="alquimista-outbox",
            ),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
            deletion_protection=config.deletion_protection,
        )
        data.database.runtime_secret.grant_read(self.events.relay.role)
        if self.knowledge is not None:
            self._build_ingestion(
                config=config,
                network=network,
                data=data,
                bundle=bundle,
                migrations=migrations,
                knowledge=self.knowledge,
            )
        if ACTIVITY_GROUP in self.route_functions.functions:
            self.events.grant_feed_read(self.route_functions.functions[ACTIVITY_GROUP].role)
        self._grant(data, {**self.route_functions.functions, JOBS_GROUP: self.jobs.function})
        if self.lead_imports is not None:
            self.lead_imports.grant_presign_uploads(
                self.route_functions.functions[LEADS_GROUP].role
            )
            data.database.runtime_secret.grant_read(self.lead_imports.ingestion.role)
        if LEADS_GROUP in self.route_functions.functions:
            grant_send_email(
                self.route_functions.functions[LEADS_GROUP].role,
                sender=config.outreach_sender,
                identities=config.outreach_identities,
            )
        if MEMBERS_GROUP in self.route_functions.functions:
            # Invitations only: create a user, or read the one that exists (no deletes, no
            # attribute changes), in this stack's pool.
            self.identity.user_pool.grant(
                self.route_functions.functions[MEMBERS_GROUP].role, *COGNITO_ACTIONS
            )
        for construct in [
            *self.route_functions.functions.values(),
            self.jobs.function,
            self.events.relay,
            *([self.lead_imports.ingestion] if self.lead_imports else []),
        ]:
            # Routes and jobs go live only once the schema they query is current.
            construct.function.node.add_dependency(migrations.migrations.resource)
        self.http_api = HttpApiConstruct(
            self,
            "Api",
            env=config.env,
            routes=routes,
            handlers={g: c.function for g, c in self.route_functions.functions.items()},
            user_pool=self.identity.user_pool,
            user_pool_client=self.identity.client,
            cors_origins=config.cors_origins,
            rate_limit=config.api_rate_limit,
            burst_limit=config.api_burst_limit,
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        CfnOutput(self, "ApiUrl", value=self.http_api.url, description="Base URL of the API")
        CfnOutput(self, "UserPoolId", value=self.identity.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.identity.client.user_pool_client_id)

    def _build_ingestion(
        self,
        *,
        config: EnvironmentConfig,
        network: NetworkConstruct,
        data: DataStack,
        bundle: LambdaBundleConstruct,
        migrations: MigrationsStack,
        knowledge: KnowledgeBaseConstruct,
    ) -> None:
        """The S3-event ingestion function (egress like chat: it calls the embeddings API);
        the chat function signs uploads and reads the provider's key."""
        ingestion = knowledge.add_ingestion(
            code=bundle.code,
            layers=bundle.layers_for(chat=True),
            vpc=network.vpc,
            subnets=network.egress_subnets,
            security_group=network.function_security_group,
            environment=environment_variables(
                ChatSettings,
                environment=config.env,
                db_secret_id=data.database.runtime_secret.secret_arn,
                db_application_name="alquimista-chat-ingest",
                documents_bucket=knowledge.bucket.bucket_name,
                llm_secret_id=knowledge.llm_secret.secret_arn,
            ),
            log_retention=config.log_retention,
            removal_policy=config.removal_policy,
        )
        data.database.runtime_secret.grant_read(ingestion.role)
        ingestion.function.node.add_dependency(migrations.migrations.resource)
        chat = self.route_functions.functions[CHAT_GROUP]
        knowledge.grant_upload(chat.role)
        knowledge.llm_secret.grant_read(chat.role)

    @staticmethod
    def _grant(data: DataStack, functions: Mapping[str, ServiceFunctionConstruct]) -> None:
        for group, construct in functions.items():
            role = construct.role
            data.database.runtime_secret.grant_read(role)
            if group not in READ_ONLY_GROUPS:
                _grant_items(data.tables.idempotency, role)
            if group == JOBS_GROUP:
                _grant_items(data.tables.locks, role)
            if group in WEBHOOK_GROUPS:
                for secret in data.provider_secrets.webhook_secrets.values():
                    secret.grant_read(role)
            if group in SUPPRESSION_KEY_GROUPS:
                data.suppression_key.secret.grant_read(role)
            if group == JOBS_GROUP:
                data.audit_anchors.grant_write(role)
            elif group in AUDIT_ANCHOR_READERS:
                data.audit_anchors.grant_read(role)


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        *,
        data: DataStack,
        migrations: MigrationsStack,
        api: ApiStack,
        routes: Sequence[Route],
    ) -> None:
        super().__init__(
            scope, config.stack_name("Monitoring"), **_stack_props(config, "dashboard, alarms")
        )
        self.monitoring = MonitoringConstruct(
            self,
            "Monitoring",
            env=config.env,
            api=api.http_api.api,
            stage_name=STAGE_NAME,
            route_keys=[route.route_key for route in routes],
            functions={
                **api.route_functions.functions,
                JOBS_GROUP: api.jobs.function,
                "migrations": migrations.migrations.runner,
                **api.events.functions,
            },
            cluster=data.database.cluster,
            max_acu=config.aurora_max_acu,
            tables=[data.tables.locks, data.tables.idempotency],
            alarm_email=config.alarm_email,
        )
        self.outbox_alarms = outbox_alarms(
            self, events_construct=api.events, topic=self.monitoring.topic
        )
        self.monitoring.dashboard.add_widgets(*outbox_widgets())


@dataclass(frozen=True)
class Platform:
    network: NetworkStack
    data: DataStack
    migrations: MigrationsStack
    api: ApiStack
    monitoring: MonitoringStack

    @property
    def stacks(self) -> tuple[Stack, ...]:
        return (self.network, self.data, self.migrations, self.api, self.monitoring)


def connection_budget(config: EnvironmentConfig) -> int:
    """How many concurrent function environments (one connection each) Aurora can take."""
    return int(aurora_max_connections(config.aurora_max_acu) * LAMBDA_CONNECTION_SHARE)


def check_concurrency(config: EnvironmentConfig, routes: Sequence[Route]) -> None:
    total = len(route_groups(routes)) * config.api_reserved_concurrency
    total += MIGRATION_RESERVED_CONCURRENCY + JOBS_RESERVED_CONCURRENCY
    total += RELAY_RESERVED_CONCURRENCY
    budget = connection_budget(config)
    if total > budget:
        raise ConfigError(
            f"{config.env}: reserved concurrency {total} exceeds the {budget} connections Aurora "
            f"allows the functions at {config.aurora_max_acu} ACU"
        )


def build_platform(
    scope: Construct, config: EnvironmentConfig, *, routes: Sequence[Route] = ROUTES
) -> Platform:
    check_concurrency(config, routes)
    network = NetworkStack(scope, config)
    data = DataStack(scope, config, network=network.network)
    migrations = MigrationsStack(scope, config, network=network.network, data=data)
    api = ApiStack(
        scope, config, network=network.network, data=data, migrations=migrations, routes=routes
    )
    monitoring = MonitoringStack(
        scope, config, data=data, migrations=migrations, api=api, routes=routes
    )
    return Platform(network, data, migrations, api, monitoring)
