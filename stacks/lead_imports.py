"""CSV imports of leads: the private bucket operators' files are uploaded to (presigned POST,
size-limited by the upload policy), the ingestion function, and the S3 notification that
calls it for each new ``imports/<tenant>/<import>.csv`` object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.functions import ServiceFunctionConstruct
from stacks.nag import acknowledge

IMPORT_HANDLER = "lambdas.leads.import_handler.lambda_handler"
IMPORT_PREFIX = "imports/"
IMPORT_TIMEOUT = Duration.minutes(5)
IMPORT_RESERVED_CONCURRENCY = 2
# Uploaded files hold personal data: they are kept only long enough to be applied and checked.
IMPORT_OBJECT_DAYS = 7


class LeadImportsConstruct(Construct):
    """The imports bucket and the ingestion function (it reads the suppression list's HMAC key,
    which the data stack keeps)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        suppression_key: secretsmanager.ISecret,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = self._build_bucket(removal_policy)
        self.suppression_key = suppression_key
        self.ingestion = ServiceFunctionConstruct(
            self,
            "Ingestion",
            handler=IMPORT_HANDLER,
            description="Applies uploaded leads CSV files (all or nothing per file)",
            code=code,
            layers=layers,
            vpc=vpc,
            subnets=subnets,
            security_group=security_group,
            environment={**environment, **self.environment()},
            timeout=IMPORT_TIMEOUT,
            reserved_concurrency=IMPORT_RESERVED_CONCURRENCY,
            log_retention=log_retention,
            removal_policy=removal_policy,
        )
        self.grant_read_uploads(self.ingestion.role)
        acknowledge(
            self.ingestion.role,
            f"AwsSolutions-IAM5[Resource::<{self._bucket_logical_id()}.Arn>/{IMPORT_PREFIX}*]",
            "Each upload's key names a tenant and an import created at request time, so the "
            "function reads (GetObject only) any object under the imports/ prefix it is "
            "notified about.",
        )
        self.suppression_key.grant_read(self.ingestion.role)
        self._build_notification()

    def environment(self) -> dict[str, str]:
        """What LeadsSettings reads about these resources."""
        return {
            "LEADS_IMPORTS_BUCKET": self.bucket.bucket_name,
            "LEADS_SUPPRESSION_SECRET_ARN": self.suppression_key.secret_arn,
        }

    def _build_bucket(self, removal_policy: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(IMPORT_OBJECT_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=False,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Uploads are short-lived inputs expiring after a week; each one is recorded as an "
            "import row with its requester and outcome in PostgreSQL and the audit log, so an "
            "access log bucket would keep a second trail of personal-data keys for no gain.",
        )
        return bucket

    def _bucket_logical_id(self) -> str:
        stack = Stack.of(self)
        return str(stack.resolve(stack.get_logical_id(self.bucket.node.default_child)))  # type: ignore[arg-type]

    def grant_read_uploads(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{IMPORT_PREFIX}*")],
            )
        )

    def grant_presign_uploads(self, grantee: iam.IGrantable) -> None:
        """A presigned POST is signed with the grantee's own permission to put the object."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.bucket.arn_for_objects(f"{IMPORT_PREFIX}*")],
            )
        )
        if isinstance(grantee, Construct):
            acknowledge(
                grantee,
                f"AwsSolutions-IAM5[Resource::<{self._bucket_logical_id()}.Arn>/{IMPORT_PREFIX}*]",
                "Each presigned upload names a tenant and an import created at request time, so "
                "the leads function may put (PutObject only) any object under the imports/ prefix.",
            )

    def _build_notification(self) -> None:
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.ingestion.function),
            s3.NotificationKeyFilter(prefix=IMPORT_PREFIX, suffix=".csv"),
        )
        # CDK's shared handler that writes the bucket's notification configuration.
        stack = Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                acknowledge(
                    child,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's bucket-notification custom resource runs once at deploy with the "
                    "AWS managed basic execution role; it touches no data.",
                )
