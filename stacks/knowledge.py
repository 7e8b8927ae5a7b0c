"""The chat's knowledge base on AWS: the bucket of the originals, the LLM provider's key, and
the ingestion function the bucket's ``ObjectCreated`` events invoke (docs/chat.md)."""

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

from lambdas.chat.constants import DOCUMENTS_PREFIX
from lambdas.shared.constants import ResourceNames
from stacks.functions import ServiceFunctionConstruct
from stacks.nag import acknowledge

INGEST_HANDLER = "lambdas.chat.ingest_handler.lambda_handler"
INGEST_TIMEOUT = Duration.minutes(5)
INGEST_MEMORY_MB = 1024
# A few documents at a time: each holds a database connection while it stores its chunks.
INGEST_RESERVED_CONCURRENCY = 2
UPLOAD_ACTIONS = ("s3:PutObject",)
READ_ACTIONS = ("s3:GetObject",)


def llm_secret_name(names: ResourceNames) -> str:
    return f"/alquimista/{names.env}/chat/llm-api-key"


class KnowledgeBaseConstruct(Construct):
    """Private, encrypted, versioned bucket accepting TLS only; originals are uploaded with a
    presigned POST under ``documents/<tenant>/<id>/`` and each new object invokes the ingestion
    function. The provider's key is a secret operators fill in (``{"api_key": ...}``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        cors_origins: Sequence[str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self.bucket = self._build_bucket(cors_origins, removal_policy)
        self.llm_secret = self._build_llm_secret(removal_policy)
        self.ingestion: ServiceFunctionConstruct | None = None

    def _build_bucket(
        self, cors_origins: Sequence[str], removal_policy: RemovalPolicy
    ) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "Documents",
            versioned=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            removal_policy=removal_policy,
            cors=[
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.POST],
                    allowed_origins=list(cors_origins) or ["https://localhost"],
                    allowed_headers=["*"],
                    max_age=3000,
                )
            ],
            lifecycle_rules=[
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30)),
                s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1)),
            ],
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "Uploads are authorised per request by the chat function (presigned, audited as "
            "document.upload_requested) and ingestion is logged; CloudTrail data events can be "
            "enabled where object-level access logs are required.",
        )
        return bucket

    def _build_llm_secret(self, removal_policy: RemovalPolicy) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "LlmApiKey",
            secret_name=llm_secret_name(self._names),
            description='API key of the OpenAI-compatible LLM provider ({"api_key": ...})',
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template="{}",  # noqa: S106  # an empty JSON object, no value
                generate_string_key="api_key",
                exclude_punctuation=True,
                password_length=48,
            ),
            removal_policy=removal_policy,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "The LLM provider issues and rotates this API key; operators copy it in.",
        )
        return secret

    def add_ingestion(
        self,
        *,
        code: lambda_.Code,
        layers: Sequence[lambda_.ILayerVersion],
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        security_group: ec2.ISecurityGroup,
        environment: Mapping[str, str],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> ServiceFunctionConstruct:
        """The function every new original under ``documents/`` invokes (asynchronously:
        Lambda retries a failed ingestion twice)."""
        ingestion = ServiceFunctionConstruct(
            self,
            "Ingestion",
            handler=INGEST_HANDLER,
            description="Ingest uploaded knowledge-base documents (extract, chunk, embed)",
            code=code,
            layers=layers,
            vpc=vpc,
            subnets=subnets,
            security_group=security_group,
            environment=environment,
            timeout=INGEST_TIMEOUT,
            reserved_concurrency=INGEST_RESERVED_CONCURRENCY,
            log_retention=log_retention,
            removal_policy=removal_policy,
            memory_mb=INGEST_MEMORY_MB,
        )
        self.grant_read(ingestion.role)
        self.llm_secret.grant_read(ingestion.role)
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(ingestion.function),
            s3.NotificationKeyFilter(prefix=DOCUMENTS_PREFIX),
        )
        self._acknowledge_notification_handler()
        self.ingestion = ingestion
        return ingestion

    def grant_upload(self, grantee: iam.Role) -> None:
        """Sign presigned uploads of originals (the chat function)."""
        self._grant(grantee, UPLOAD_ACTIONS)

    def grant_read(self, grantee: iam.Role) -> None:
        self._grant(grantee, READ_ACTIONS)

    def _grant(self, grantee: iam.Role, actions: tuple[str, ...]) -> None:
        grantee.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=[self.bucket.arn_for_objects(f"{DOCUMENTS_PREFIX}*")],
            )
        )
        bucket = self.bucket.node.default_child
        if not isinstance(bucket, s3.CfnBucket):
            raise TypeError("the documents bucket has no CfnBucket")
        logical_id = Stack.of(self).get_logical_id(bucket)
        acknowledge(
            grantee.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{DOCUMENTS_PREFIX}*]",
            "Originals are keyed by tenant and upload id, unknown until a request or an S3 "
            "event names one; the grant is limited to the documents/ prefix of one bucket.",
        )

    def _acknowledge_notification_handler(self) -> None:
        """CDK configures bucket notifications through a singleton function of its own."""
        stack = Stack.of(self)
        for child in stack.node.children:
            if not child.node.id.startswith("BucketNotificationsHandler"):
                continue
            role = child.node.try_find_child("Role")
            if role is None:
                continue
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaBasicExecutionRole]",
                "CDK's bucket-notification handler uses AWSLambdaBasicExecutionRole to write "
                "its own logs; it runs only at deploy time.",
            )
            policy = role.node.try_find_child("DefaultPolicy")
            if policy is not None:
                acknowledge(
                    policy,
                    "AwsSolutions-IAM5[Resource::*]",
                    "s3:PutBucketNotification on the stack's buckets is set by CDK's "
                    "deploy-time handler, which takes no narrower resource.",
                )
