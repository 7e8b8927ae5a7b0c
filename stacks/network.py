from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

ISOLATED: ec2.SubnetType = ec2.SubnetType.PRIVATE_ISOLATED
EGRESS: ec2.SubnetType = ec2.SubnetType.PRIVATE_WITH_EGRESS


class NetworkConstruct(Construct):
    """The VPC: isolated subnets for the database and the functions, private subnets with a NAT
    route for the one function that calls the LLM provider, and endpoints so that nothing else
    needs the internet (DynamoDB and S3 gateways, a Secrets Manager interface endpoint)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        availability_zones: tuple[str, ...],
        nat_gateways: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._availability_zones = availability_zones
        self._nat_gateways = nat_gateways
        self.vpc = self._build_vpc()
        self.flow_logs = self._build_flow_logs(log_retention, removal_policy)
        self.function_security_group = self._build_function_security_group()
        self.secrets_endpoint = self._build_endpoints()

    @property
    def isolated_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=ISOLATED)

    @property
    def egress_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=EGRESS)

    def _build_vpc(self) -> ec2.Vpc:
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            availability_zones=list(self._availability_zones),
            nat_gateways=self._nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24
                ),
                ec2.SubnetConfiguration(name="egress", subnet_type=EGRESS, cidr_mask=24),
                ec2.SubnetConfiguration(name="isolated", subnet_type=ISOLATED, cidr_mask=22),
            ],
            restrict_default_security_group=True,
        )

    def _build_flow_logs(
        self, retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> ec2.FlowLog:
        group = logs.LogGroup(
            self, "FlowLogGroup", retention=retention, removal_policy=removal_policy
        )
        return self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )

    def _build_function_security_group(self) -> ec2.SecurityGroup:
        # Egress is open at the group and bounded by routing: isolated subnets have no route out.
        return ec2.SecurityGroup(
            self,
            "FunctionSecurityGroup",
            vpc=self.vpc,
            description="Lambda functions - the only clients the database accepts",
            allow_all_outbound=True,
        )

    def _build_endpoints(self) -> ec2.InterfaceVpcEndpoint:
        gateway_subnets = [self.isolated_subnets, self.egress_subnets]
        self.vpc.add_gateway_endpoint(
            "DynamoDbEndpoint",
            service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
            subnets=gateway_subnets,
        )
        self.vpc.add_gateway_endpoint(
            "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=gateway_subnets
        )
        endpoint = self.vpc.add_interface_endpoint(
            "SecretsManagerEndpoint",
            service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
            subnets=self.isolated_subnets,
            private_dns_enabled=True,
            open=False,
        )
        endpoint.connections.allow_default_port_from(
            self.function_security_group, "functions call Secrets Manager"
        )
        return endpoint
