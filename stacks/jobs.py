from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.bundling import LambdaBundleConstruct
from stacks.functions import ServiceFunctionConstruct

JOBS_HANDLER = "lambdas.jobs.handler.lambda_handler"
JOBS_TIMEOUT = Duration.minutes(5)
# Each job takes a DynamoDB lease, so one concurrent execution is all the schedules need.
JOBS_RESERVED_CONCURRENCY = 1


class ScheduledJobsConstruct(Construct):
    """The jobs function and one EventBridge schedule per job (``{"job": "<name>"}``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        schedules: Mapping[str, Duration],
        bundle: LambdaBundleConstruct,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = ServiceFunctionConstruct(
            self,
            "Jobs",
            handler=JOBS_HANDLER,
            description="Scheduled jobs (trial expiry)",
            code=bundle.code,
            layers=bundle.layers_for(chat=False),
            vpc=vpc,
            subnets=subnets,
            security_group=security_group,
            environment=environment,
            timeout=JOBS_TIMEOUT,
            reserved_concurrency=JOBS_RESERVED_CONCURRENCY,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        self.rules = {job: self._build_schedule(job, every) for job, every in schedules.items()}

    def _build_schedule(self, job: str, every: Duration) -> events.Rule:
        rule = events.Rule(
            self,
            f"{job.title().replace('_', '')}Schedule",
            description=f"Runs the {job} job every {every.to_human_string()}",
            schedule=events.Schedule.rate(every),
        )
        rule.add_target(
            targets.LambdaFunction(
                self.function.function,
                event=events.RuleTargetInput.from_object({"job": job}),
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            )
        )
        return rule
