from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from lambdas.shared.constants import ResourceNames


class TablesConstruct(Construct):
    """DynamoDB tables: leases with a TTL (``lock_id``/``expires_at``) and Powertools idempotency
    records (its defaults: ``id``/``expiration``). On demand, PITR, KMS encryption."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        removal_policy: RemovalPolicy,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._removal_policy = removal_policy
        self._deletion_protection = deletion_protection
        self.locks = self._build_table("LocksTable", names.locks_table, "lock_id", "expires_at")
        self.idempotency = self._build_table(
            "IdempotencyTable", names.idempotency_table, "id", "expiration"
        )

    def _build_table(
        self, construct_id: str, name: str, key: str, ttl_attribute: str
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            table_name=name,
            partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING),
            time_to_live_attribute=ttl_attribute,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            deletion_protection=self._deletion_protection,
            removal_policy=self._removal_policy,
        )
