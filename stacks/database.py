from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from lambdas.shared.constants import ResourceNames
from stacks.constants import MASTER_USERNAME, POSTGRES_PORT
from stacks.nag import acknowledge

# 17.4+ ships pgvector 0.8 and supports Serverless v2 scaling to zero with auto-pause.
ENGINE_VERSION: rds.AuroraPostgresEngineVersion = rds.AuroraPostgresEngineVersion.VER_17_5


class DatabaseConstruct(Construct):
    """Aurora PostgreSQL Serverless v2 in isolated subnets, reachable only from the functions'
    security group, with the owner's credentials and the runtime role's credentials in Secrets
    Manager (both in Aurora's secret JSON shape, with ``dbname``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        client_security_group: ec2.ISecurityGroup,
        min_acu: float,
        max_acu: float,
        auto_pause: Duration,
        readers: int,
        backup_retention: Duration,
        deletion_protection: bool,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        master_rotation: Duration | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self._cluster_identifier = names.prefix
        self._vpc = vpc
        self._subnets = subnets
        self._removal_policy = removal_policy
        self._deletion_protection = deletion_protection
        self.security_group = self._build_security_group()
        self.master_secret = self._build_secret("MasterSecret", MASTER_USERNAME, names.db_secret)
        self.cluster = self._build_cluster(
            min_acu=min_acu,
            max_acu=max_acu,
            auto_pause=auto_pause,
            readers=readers,
            backup_retention=backup_retention,
            deletion_protection=deletion_protection,
            log_retention=log_retention,
        )
        # The same call the rotation function makes, so CDK emits one rule, not a duplicate.
        self.cluster.connections.allow_default_port_from(
            client_security_group, "functions to PostgreSQL"
        )
        self.runtime_secret = self._build_secret(
            "RuntimeSecret", names.runtime_db_role, names.runtime_db_secret
        )
        self.runtime_secret.attach(self.cluster)
        self.master_rotation = (
            self.cluster.add_rotation_single_user(
                automatically_after=master_rotation,
                vpc_subnets=subnets,
                security_group=client_security_group,
            )
            if master_rotation
            else None
        )
        self._acknowledge_findings(master_rotated=master_rotation is not None)

    def _acknowledge_findings(self, *, master_rotated: bool) -> None:
        acknowledge(
            self.runtime_secret,
            "AwsSolutions-SMG4",
            "The migration function sets the runtime role's password from this secret on every "
            "schema apply; rotating it needs a multi-user rotation function (not built yet).",
        )
        if not self._deletion_protection:
            acknowledge(
                self.cluster,
                "AwsSolutions-RDS10",
                "Development only: dev clusters are torn down with the stack; production "
                "enables deletion protection and retains the cluster.",
            )
        if not master_rotated:
            acknowledge(
                self.master_secret,
                "AwsSolutions-SMG4",
                "Development only: the owner's password rotates in production; dev clusters are "
                "short-lived and auto-paused, and a rotation function would keep waking them.",
            )
        acknowledge(
            self.cluster,
            "AwsSolutions-RDS11",
            "A non-default port is obscurity, not a control: only the functions' security "
            "group can reach the cluster, from isolated subnets, over TLS.",
        )

    def _build_security_group(self) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=self._vpc,
            description="Aurora PostgreSQL - reachable from the function security group only",
            allow_all_outbound=False,
        )
        return group

    def _build_secret(self, construct_id: str, username: str, name: str) -> rds.DatabaseSecret:
        secret = rds.DatabaseSecret(
            self,
            construct_id,
            username=username,
            secret_name=name,
            dbname=self._names.database_name,
        )
        secret.apply_removal_policy(self._removal_policy)
        return secret

    def _build_cluster(
        self,
        *,
        min_acu: float,
        max_acu: float,
        auto_pause: Duration,
        readers: int,
        backup_retention: Duration,
        deletion_protection: bool,
        log_retention: logs.RetentionDays,
    ) -> rds.DatabaseCluster:
        engine = rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSION)
        # Created here, with its retention, instead of by RDS on first write: this avoids the
        # log-retention custom resource (and its broad role) that cloudwatch_logs_retention adds.
        log_group = logs.LogGroup(
            self,
            "PostgresqlLogs",
            log_group_name=f"/aws/rds/cluster/{self._cluster_identifier}/postgresql",
            retention=log_retention,
            removal_policy=self._removal_policy,
        )
        cluster = rds.DatabaseCluster(
            self,
            "Cluster",
            engine=engine,
            credentials=rds.Credentials.from_secret(self.master_secret),
            default_database_name=self._names.database_name,
            port=POSTGRES_PORT,
            writer=rds.ClusterInstance.serverless_v2("writer", publicly_accessible=False),
            readers=[
                rds.ClusterInstance.serverless_v2(
                    f"reader{index}", publicly_accessible=False, scale_with_writer=True
                )
                for index in range(1, readers + 1)
            ],
            serverless_v2_min_capacity=min_acu,
            serverless_v2_max_capacity=max_acu,
            serverless_v2_auto_pause_duration=auto_pause if min_acu == 0 else None,
            vpc=self._vpc,
            vpc_subnets=self._subnets,
            security_groups=[self.security_group],
            storage_encrypted=True,
            iam_authentication=True,
            backup=rds.BackupProps(retention=backup_retention),
            deletion_protection=deletion_protection,
            removal_policy=self._removal_policy,
            cluster_identifier=self._cluster_identifier,
            cloudwatch_logs_exports=["postgresql"],
            parameters={"rds.force_ssl": "1"},
            copy_tags_to_snapshot=True,
        )
        cluster.node.add_dependency(log_group)
        return cluster
