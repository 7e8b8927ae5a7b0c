from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from lambdas.shared.constants import (
    APPROVAL_LATENCY_METRIC,
    APPROVAL_OLDEST_PENDING_AGE_METRIC,
    APPROVALS_ESCALATED_METRIC,
    APPROVALS_EXPIRED_METRIC,
    APPROVALS_PENDING_METRIC,
    AUDIT_ANCHOR_AGE_METRIC,
    AUDIT_VERIFY_FAILURES_METRIC,
    DSR_ALARM_WINDOW_HOURS,
    DSR_DUE_SOON_METRIC,
    POLICY_DEFAULT_METRIC,
    POLICY_EVALUATIONS_METRIC,
    POLICY_RULE_HIT_METRIC,
)
from stacks.audit import audit_metric, build_audit_alarms
from stacks.constants import APPROVAL_PENDING_AGE_ALARM, JOB_SCHEDULES
from stacks.functions import ServiceFunctionConstruct

PERIOD = Duration.minutes(5)
SERVER_ERROR_RATE_PERCENT = 5
P99_LATENCY_MS = 5000
INIT_DURATION_NAMESPACE = "Alquimista/Lambda"
_WIDTH = 12


class MonitoringConstruct(Construct):
    """The environment's dashboard and its alarms, which notify one encrypted SNS topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        env: str,
        api: apigwv2.IHttpApi,
        stage_name: str,
        route_keys: Sequence[str],
        functions: Mapping[str, ServiceFunctionConstruct],
        cluster: rds.DatabaseCluster,
        max_acu: float,
        tables: Sequence[dynamodb.ITable],
        alarm_email: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._env = env
        self._api = api
        self._stage_name = stage_name
        self.topic = self._build_topic(alarm_email)
        self.init_duration = {
            name: self._build_init_duration_metric(name, function.log_group)
            for name, function in functions.items()
        }
        self.alarms = self._build_alarms(functions, cluster, max_acu)
        self.dashboard = self._build_dashboard(route_keys, functions, cluster, tables)

    def _build_topic(self, alarm_email: str) -> sns.Topic:
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"Encrypts the alquimista-{self._env} alarm topic",
            enable_key_rotation=True,
        )
        key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*"
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"alquimista-{self._env} alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _build_init_duration_metric(
        self, name: str, log_group: logs.ILogGroup
    ) -> cloudwatch.Metric:
        # Lambda reports init duration only in its platform.report log record, not as a metric.
        metric_name = f"InitDuration-{name}"
        logs.MetricFilter(
            self,
            f"InitDurationFilter{name.capitalize()}",
            log_group=log_group,
            metric_namespace=INIT_DURATION_NAMESPACE,
            metric_name=metric_name,
            filter_pattern=logs.FilterPattern.all(
                logs.FilterPattern.string_value("$.type", "=", "platform.report"),
                logs.FilterPattern.exists("$.record.metrics.initDurationMs"),
            ),
            metric_value="$.record.metrics.initDurationMs",
            unit=cloudwatch.Unit.MILLISECONDS,
        )
        return cloudwatch.Metric(
            namespace=INIT_DURATION_NAMESPACE,
            metric_name=metric_name,
            statistic="p99",
            period=PERIOD,
            label=f"{name} init p99",
        )

    def _api_metric(
        self, name: str, statistic: str, route_key: str | None = None
    ) -> cloudwatch.Metric:
        dimensions = {"ApiId": self._api.api_id, "Stage": self._stage_name}
        if route_key:
            dimensions["Route"] = route_key
        return cloudwatch.Metric(
            namespace="AWS/ApiGateway",
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=PERIOD,
            label=f"{route_key or 'all'} {name} {statistic}",
        )

    def _build_alarms(
        self,
        functions: Mapping[str, ServiceFunctionConstruct],
        cluster: rds.DatabaseCluster,
        max_acu: float,
    ) -> list[cloudwatch.Alarm]:
        error_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "requests": self._api_metric("Count", "Sum"),
                "errors": self._api_metric("5xx", "Sum"),
            },
            period=PERIOD,
            label="5xx rate (%)",
        )
        alarms = [
            error_rate.create_alarm(
                self,
                "Api5xxRateAlarm",
                alarm_description=f"More than {SERVER_ERROR_RATE_PERCENT}% of requests fail",
                threshold=SERVER_ERROR_RATE_PERCENT,
                evaluation_periods=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            self._api_metric("Latency", "p99").create_alarm(
                self,
                "ApiP99LatencyAlarm",
                alarm_description=f"p99 latency above {P99_LATENCY_MS} ms",
                threshold=P99_LATENCY_MS,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            cluster.metric_serverless_database_capacity(
                statistic="Maximum", period=PERIOD
            ).create_alarm(
                self,
                "AuroraAcuAtMaxAlarm",
                alarm_description=f"Aurora has been at its maximum of {max_acu} ACU",
                threshold=max_acu,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        ]
        for name, function in functions.items():
            alarms.append(
                function.function.metric_errors(period=PERIOD, statistic="Sum").create_alarm(
                    self,
                    f"{name.capitalize()}ErrorsAlarm",
                    alarm_description=f"The {name} function raised errors",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        alarms += build_audit_alarms(self, anchor_every=JOB_SCHEDULES["anchor_audit_heads"])
        alarms.append(
            audit_metric(APPROVAL_OLDEST_PENDING_AGE_METRIC, "Maximum", PERIOD).create_alarm(
                self,
                "ApprovalPendingAgeAlarm",
                alarm_description=(
                    "An approval request has waited more than "
                    f"{APPROVAL_PENDING_AGE_ALARM.to_human_string()} for its deciders"
                ),
                threshold=APPROVAL_PENDING_AGE_ALARM.to_seconds(),
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        alarms.append(self._build_dsr_deadline_alarm())
        for alarm in alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return alarms

    def _build_dsr_deadline_alarm(self) -> cloudwatch.Alarm:
        """Open LGPD data subject requests due within 48 h (Art. 19: 15 days to answer). No
        count for three job periods means the job stopped, which hides deadlines: alarm too."""
        every = JOB_SCHEDULES["leads_dsr_deadlines"]
        window = Duration.minutes(every.to_minutes() * 3)
        return audit_metric(DSR_DUE_SOON_METRIC, "Maximum", window).create_alarm(
            self,
            "LeadsDsrDeadlineAlarm",
            alarm_description=(
                f"A data subject request is due within {DSR_ALARM_WINDOW_HOURS} h "
                "(GET /api/leads/dsr?status=open), or the deadline job stopped reporting"
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

    def _build_dashboard(
        self,
        route_keys: Sequence[str],
        functions: Mapping[str, ServiceFunctionConstruct],
        cluster: rds.DatabaseCluster,
        tables: Sequence[dynamodb.ITable],
    ) -> cloudwatch.Dashboard:
        def graph(title: str, metrics: Sequence[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=list(metrics), width=_WIDTH)

        fns = {name: construct.function for name, construct in functions.items()}
        dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"alquimista-{self._env}"
        )
        dashboard.add_widgets(
            graph("API requests", [self._api_metric("Count", "Sum")]),
            graph(
                "API 4xx / 5xx", [self._api_metric("4xx", "Sum"), self._api_metric("5xx", "Sum")]
            ),
        )
        dashboard.add_widgets(
            graph(
                "Latency p50 by route",
                [self._api_metric("Latency", "p50", key) for key in route_keys],
            ),
            graph(
                "Latency p99 by route",
                [self._api_metric("Latency", "p99", key) for key in route_keys],
            ),
        )
        dashboard.add_widgets(
            graph("Lambda errors", [f.metric_errors(period=PERIOD) for f in fns.values()]),
            graph("Lambda throttles", [f.metric_throttles(period=PERIOD) for f in fns.values()]),
        )
        dashboard.add_widgets(
            graph(
                "Lambda duration p99",
                [f.metric_duration(period=PERIOD, statistic="p99") for f in fns.values()],
            ),
            graph("Lambda init duration p99", list(self.init_duration.values())),
        )
        dashboard.add_widgets(
            graph("Aurora ACU", [cluster.metric_serverless_database_capacity(period=PERIOD)]),
            graph("Aurora connections", [cluster.metric_database_connections(period=PERIOD)]),
        )
        dashboard.add_widgets(
            graph("Aurora CPU %", [cluster.metric_cpu_utilization(period=PERIOD)]),
            graph(
                "DynamoDB throttled events",
                [
                    table.metric(name, period=PERIOD, statistic="Sum")
                    for table in tables
                    for name in ("ReadThrottleEvents", "WriteThrottleEvents")
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Audit verification failures",
                [audit_metric(AUDIT_VERIFY_FAILURES_METRIC, "Sum", PERIOD)],
            ),
            graph(
                "Audit anchor age (s)", [audit_metric(AUDIT_ANCHOR_AGE_METRIC, "Maximum", PERIOD)]
            ),
        )
        dashboard.add_widgets(
            graph(
                "Policy evaluations by effect; rule hit / default",
                [
                    audit_metric(POLICY_EVALUATIONS_METRIC + effect, "Sum", PERIOD)
                    for effect in ("Allow", "Block", "RequireApproval")
                ]
                + [
                    audit_metric(POLICY_RULE_HIT_METRIC, "Sum", PERIOD),
                    audit_metric(POLICY_DEFAULT_METRIC, "Sum", PERIOD),
                ],
            ),
            graph(
                "Approval latency created -> decided (s)",
                [
                    audit_metric(APPROVAL_LATENCY_METRIC, "p50", PERIOD),
                    audit_metric(APPROVAL_LATENCY_METRIC, "p90", PERIOD),
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Approvals pending; expired and escalated",
                [
                    audit_metric(APPROVALS_PENDING_METRIC, "Maximum", PERIOD),
                    audit_metric(APPROVALS_EXPIRED_METRIC, "Sum", PERIOD),
                    audit_metric(APPROVALS_ESCALATED_METRIC, "Sum", PERIOD),
                ],
            ),
            graph(
                "Oldest pending approval (s)",
                [audit_metric(APPROVAL_OLDEST_PENDING_AGE_METRIC, "Maximum", PERIOD)],
            ),
        )
        return dashboard
