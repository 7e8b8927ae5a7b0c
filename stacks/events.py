"""The outbox's way out: the relay on a schedule, the environment's EventBridge bus, and the
first projection (the activity feed: rule -> SQS queue with a DLQ -> consumer -> DynamoDB)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.shared.constants import (
    METRICS_NAMESPACE,
    OUTBOX_EVENT_SOURCE,
    POWERTOOLS_SERVICE,
    ResourceNames,
)
from stacks.bundling import LambdaBundleConstruct
from stacks.functions import ServiceFunctionConstruct
from stacks.nag import acknowledge

RELAY_HANDLER: Final = "lambdas.outbox.handler.lambda_handler"
CONSUMER_HANDLER: Final = "lambdas.activity.consumer.lambda_handler"
RELAY_SCHEDULE: Final = Duration.minutes(1)
RELAY_TIMEOUT: Final = Duration.seconds(60)
# One relay per environment: SKIP LOCKED makes more safe, not faster for one aggregate.
RELAY_RESERVED_CONCURRENCY: Final = 1
CONSUMER_TIMEOUT: Final = Duration.seconds(30)
CONSUMER_RESERVED_CONCURRENCY: Final = 5
CONSUMER_BATCH_SIZE: Final = 10
MAX_RECEIVE_COUNT: Final = 5
BACKLOG_AGE_ALARM_S: Final = 600
PUBLISH_RETRIES_ALARM: Final = 10
ALARM_PERIOD: Final = Duration.minutes(5)


class OutboxEventsConstruct(Construct):
    """Bus, relay (scheduled), activity rule -> queue (+DLQ) -> consumer, activity table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        bundle: LambdaBundleConstruct,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        database_environment: Mapping[str, str],
        interface_endpoint: bool = True,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self._bundle = bundle
        self._vpc = vpc
        self._subnets = subnets
        self._security_group = security_group
        self._log_retention = log_retention
        self._removal_policy = removal_policy
        self.bus = events.EventBus(self, "Bus", event_bus_name=names.event_bus)
        # Without one (functions behind the NAT), PutEvents leaves through the NAT.
        self.endpoint = (
            self._build_endpoint(vpc, subnets, security_group) if interface_endpoint else None
        )
        self.activity_table = self._build_table(removal_policy, deletion_protection)
        self.dead_letters, self.queue = self._build_queues(removal_policy)
        self.relay = self._build_relay(database_environment)
        self.consumer = self._build_consumer()
        self.rule = self._build_activity_rule()

    def _build_endpoint(
        self, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, security_group: ec2.ISecurityGroup
    ) -> ec2.InterfaceVpcEndpoint:
        # The relay runs in isolated subnets: PutEvents goes through this endpoint.
        endpoint = ec2.InterfaceVpcEndpoint(
            self,
            "EventBridgeEndpoint",
            vpc=vpc,
            service=ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
            subnets=subnets,
            private_dns_enabled=True,
            open=False,
        )
        endpoint.connections.allow_default_port_from(
            security_group, "the outbox relay publishes to EventBridge"
        )
        return endpoint

    def _build_table(
        self, removal_policy: RemovalPolicy, deletion_protection: bool
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            "ActivityTable",
            table_name=self._names.activity_table,
            partition_key=dynamodb.Attribute(name="tenant_id", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=deletion_protection,
            removal_policy=removal_policy,
        )

    def _build_queues(self, removal_policy: RemovalPolicy) -> tuple[sqs.Queue, sqs.Queue]:
        dead_letters = sqs.Queue(
            self,
            "ActivityDeadLetters",
            queue_name=f"{self._names.activity_queue}-dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy,
        )
        acknowledge(
            dead_letters,
            "AwsSolutions-SQS3",
            "This is the dead-letter queue of the activity queue and of the rule's target; a "
            "dead-letter queue of its own would only move the same messages again.",
        )
        queue = sqs.Queue(
            self,
            "ActivityQueue",
            queue_name=self._names.activity_queue,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            # Lambda's guidance: six times the function timeout, so retries stay invisible.
            visibility_timeout=Duration.seconds(CONSUMER_TIMEOUT.to_seconds() * 6),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
            removal_policy=removal_policy,
        )
        return dead_letters, queue

    def _function(
        self,
        construct_id: str,
        *,
        handler: str,
        description: str,
        environment: Mapping[str, str],
        timeout: Duration,
        reserved_concurrency: int,
    ) -> ServiceFunctionConstruct:
        return ServiceFunctionConstruct(
            self,
            construct_id,
            handler=handler,
            description=description,
            code=self._bundle.code,
            layers=self._bundle.layers_for(chat=False),
            vpc=self._vpc,
            subnets=self._subnets,
            security_group=self._security_group,
            environment=environment,
            timeout=timeout,
            reserved_concurrency=reserved_concurrency,
            log_retention=self._log_retention,
            removal_policy=self._removal_policy,
        )

    def _build_relay(self, database_environment: Mapping[str, str]) -> ServiceFunctionConstruct:
        relay = self._function(
            "Relay",
            handler=RELAY_HANDLER,
            description="Outbox relay: publishes committed domain events to EventBridge",
            environment={**database_environment, "EVENT_BUS_NAME": self.bus.event_bus_name},
            timeout=RELAY_TIMEOUT,
            reserved_concurrency=RELAY_RESERVED_CONCURRENCY,
        )
        self.bus.grant_put_events_to(relay.role)
        schedule = events.Rule(
            self,
            "RelaySchedule",
            description=f"Runs the outbox relay every {RELAY_SCHEDULE.to_human_string()}",
            schedule=events.Schedule.rate(RELAY_SCHEDULE),
        )
        # No retries: the next tick runs a minute later and finds whatever is still due.
        schedule.add_target(targets.LambdaFunction(relay.function, retry_attempts=0))
        return relay

    def _build_consumer(self) -> ServiceFunctionConstruct:
        consumer = self._function(
            "ActivityConsumer",
            handler=CONSUMER_HANDLER,
            description="Activity feed projection: applies outbox events to DynamoDB",
            environment={
                "APP_ENV": self._names.env,
                "ACTIVITY_TABLE_NAME": self.activity_table.table_name,
            },
            timeout=CONSUMER_TIMEOUT,
            reserved_concurrency=CONSUMER_RESERVED_CONCURRENCY,
        )
        self.activity_table.grant(consumer.role, "dynamodb:PutItem")
        consumer.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=CONSUMER_BATCH_SIZE,
                max_batching_window=Duration.seconds(1),
                report_batch_item_failures=True,
            )
        )
        return consumer

    def _build_activity_rule(self) -> events.Rule:
        rule = events.Rule(
            self,
            "ActivityRule",
            description="Every outbox event, to the activity feed's queue",
            event_bus=self.bus,
            event_pattern=events.EventPattern(source=[OUTBOX_EVENT_SOURCE]),
        )
        rule.add_target(
            targets.SqsQueue(
                self.queue,
                dead_letter_queue=self.dead_letters,
                retry_attempts=10,
                max_event_age=Duration.hours(24),
            )
        )
        return rule

    def grant_feed_read(self, grantee: iam.IGrantable) -> None:
        """Read one tenant's partition (the activity route group): Query, never Scan."""
        self.activity_table.grant(grantee, "dynamodb:Query")

    @property
    def functions(self) -> dict[str, ServiceFunctionConstruct]:
        return {"outbox": self.relay, "feed": self.consumer}


def _outbox_metric(name: str, statistic: str) -> cloudwatch.Metric:
    # Powertools Metrics publishes EMF with the service as its one dimension.
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": POWERTOOLS_SERVICE},
        statistic=statistic,
        period=ALARM_PERIOD,
    )


def outbox_alarms(
    scope: Construct, *, events_construct: OutboxEventsConstruct, topic: sns.ITopic
) -> list[cloudwatch.Alarm]:
    """Backlog age, dead events, publish retries and the feed's dead letters; each notifies
    ``topic``. The relay's own errors are in the per-function alarms of MonitoringConstruct."""
    alarms = [
        _outbox_metric("OutboxOldestPendingAge", "Maximum").create_alarm(
            scope,
            "OutboxBacklogAgeAlarm",
            alarm_description=(
                f"An outbox event has waited more than {BACKLOG_AGE_ALARM_S} s, or the relay "
                "stopped reporting (missing data breaches)"
            ),
            threshold=BACKLOG_AGE_ALARM_S,
            evaluation_periods=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        ),
        _outbox_metric("OutboxDead", "Maximum").create_alarm(
            scope,
            "OutboxDeadEventsAlarm",
            alarm_description="Outbox events are dead (publishing gave up); see last_error",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
        _outbox_metric("OutboxRetried", "Sum").create_alarm(
            scope,
            "OutboxPublishFailuresAlarm",
            alarm_description=(
                f"At least {PUBLISH_RETRIES_ALARM} failed publishes in {ALARM_PERIOD.to_minutes()}"
                " minutes"
            ),
            threshold=PUBLISH_RETRIES_ALARM,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
        events_construct.dead_letters.metric_approximate_number_of_messages_visible(
            period=ALARM_PERIOD, statistic="Maximum"
        ).create_alarm(
            scope,
            "ActivityDeadLettersAlarm",
            alarm_description="Activity feed messages failed to apply and sit in the DLQ",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
    ]
    for alarm in alarms:
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return alarms


def outbox_widgets() -> Sequence[cloudwatch.IWidget]:
    """Dashboard widgets for the outbox (backlog and outcomes)."""
    return [
        cloudwatch.GraphWidget(
            title="Outbox backlog",
            left=[_outbox_metric("OutboxPending", "Maximum")],
            right=[_outbox_metric("OutboxOldestPendingAge", "Maximum")],
            width=12,
        ),
        cloudwatch.GraphWidget(
            title="Outbox published / retried / dead",
            left=[
                _outbox_metric("OutboxPublished", "Sum"),
                _outbox_metric("OutboxRetried", "Sum"),
                _outbox_metric("OutboxDead", "Maximum"),
            ],
            width=12,
        ),
    ]
