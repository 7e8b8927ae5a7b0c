"""The audit chain's external anchor: an S3 bucket with Object Lock in COMPLIANCE mode, and the
alarms on verification failures and on the anchor's age (docs/audit.md)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lambdas.audit.anchors import LATEST_KEY
from lambdas.shared.constants import (
    AUDIT_ANCHOR_AGE_METRIC,
    AUDIT_VERIFY_FAILURES_METRIC,
    METRICS_NAMESPACE,
    POWERTOOLS_SERVICE,
)
from stacks.nag import acknowledge

ANCHOR_WRITE_ACTIONS = ("s3:PutObject", "s3:PutObjectRetention")
ANCHOR_READ_ACTIONS = ("s3:GetObject",)


class AuditAnchorConstruct(Construct):
    """Versioned, encrypted, private bucket; every object version is locked in COMPLIANCE mode
    for ``retention`` (no one, the account root included, can shorten or delete it), and only
    TLS requests are accepted. It outlives the stack: locked objects cannot be deleted."""

    def __init__(self, scope: Construct, construct_id: str, *, retention: Duration) -> None:
        super().__init__(scope, construct_id)
        self.retention = retention
        self.bucket = self._build_bucket()

    def _build_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Bucket",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.compliance(self.retention),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "The bucket holds one small document per anchoring run written by one role; "
            "its contents are the audit evidence, immutable under COMPLIANCE object lock, "
            "and a server access log bucket would add a second store with no new evidence.",
        )
        return bucket

    def grant_write(self, grantee: iam.IGrantable) -> None:
        """Put anchor documents (with their retention) and read the latest back."""
        self._grant(grantee, (*ANCHOR_WRITE_ACTIONS, *ANCHOR_READ_ACTIONS))

    def grant_read(self, grantee: iam.IGrantable) -> None:
        self._grant(grantee, ANCHOR_READ_ACTIONS)

    def _grant(self, grantee: iam.IGrantable, actions: tuple[str, ...]) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=[self.bucket.arn_for_objects(LATEST_KEY)],
            )
        )


def audit_metric(name: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    """A metric the audit code emits through Powertools (EMF, dimension ``service``)."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": POWERTOOLS_SERVICE},
        statistic=statistic,
        period=period,
    )


def build_audit_alarms(scope: Construct, *, anchor_every: Duration) -> list[cloudwatch.Alarm]:
    """Alarms for MonitoringConstruct: any failed verification, and an anchor older than three
    anchoring periods (no age reported for a whole window counts as too old: the job stopped)."""
    window = Duration.minutes(max(anchor_every.to_minutes() * 3, 5))
    return [
        audit_metric(AUDIT_VERIFY_FAILURES_METRIC, "Sum", Duration.minutes(5)).create_alarm(
            scope,
            "AuditVerifyFailuresAlarm",
            alarm_description="An audit chain failed verification (tampering or a bug)",
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        ),
        audit_metric(AUDIT_ANCHOR_AGE_METRIC, "Maximum", window).create_alarm(
            scope,
            "AuditAnchorAgeAlarm",
            alarm_description=(
                f"The audit anchor is older than {window.to_human_string()} "
                "(the anchoring job is failing or not scheduled)"
            ),
            threshold=window.to_seconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        ),
    ]
