from __future__ import annotations

from typing import Final

from aws_cdk import Aspects, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge

ISOLATED: ec2.SubnetType = ec2.SubnetType.PRIVATE_ISOLATED
EGRESS: ec2.SubnetType = ec2.SubnetType.PRIVATE_WITH_EGRESS

# On top of the provider's own NAT setup (iptables masquerading): security updates install
# themselves daily, so the one server the platform runs does not wait for someone to patch it.
NAT_INSTANCE_PATCHING: Final = (
    "dnf install -y dnf-automatic",
    "systemctl enable --now dnf-automatic-install.timer",
)


class NetworkConstruct(Construct):
    """The VPC: isolated subnets for the database, private subnets with a NAT route, DynamoDB
    and S3 gateway endpoints.

    Where the functions run is the environment's choice (``function_egress``): in isolated
    subnets, with interface endpoints for the AWS APIs they call and only chat routed out
    (prod), or behind the NAT with no interface endpoint to pay for (dev). The NAT is a managed
    gateway or a NAT instance (``nat``). The database never has a route out or a public
    endpoint.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        availability_zones: tuple[str, ...],
        nat_gateways: int,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        nat: str = "gateway",
        nat_instance_type: str = "t4g.nano",
        function_egress: str = "endpoints",
    ) -> None:
        super().__init__(scope, construct_id)
        self._availability_zones = availability_zones
        self._nat_gateways = nat_gateways
        self.nat_instances = (
            self._nat_instance_provider(nat_instance_type) if nat == "instance" else None
        )
        self.interface_endpoints = function_egress == "endpoints"
        self.vpc = self._build_vpc()
        self.flow_logs = self._build_flow_logs(log_retention, removal_policy)
        self.function_security_group = self._build_function_security_group()
        self._build_gateway_endpoints()
        self.secrets_endpoint = self._build_secrets_endpoint() if self.interface_endpoints else None
        if self.nat_instances is not None:
            self._harden_nat_instances(self.nat_instances)

    @property
    def isolated_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=ISOLATED)

    @property
    def egress_subnets(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnet_type=EGRESS)

    @property
    def function_subnets(self) -> ec2.SubnetSelection:
        """Where every function but chat runs."""
        return self.isolated_subnets if self.interface_endpoints else self.egress_subnets

    @staticmethod
    def _nat_instance_provider(instance_type: str) -> ec2.NatInstanceProviderV2:
        kind = ec2.InstanceType(instance_type)
        cpu = (
            ec2.AmazonLinuxCpuType.ARM_64
            if kind.architecture == ec2.InstanceArchitecture.ARM_64
            else ec2.AmazonLinuxCpuType.X86_64
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            *ec2.NatInstanceProviderV2.DEFAULT_USER_DATA_COMMANDS, *NAT_INSTANCE_PATCHING
        )
        return ec2.NatProvider.instance_v2(
            instance_type=kind,
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu),
            # Nothing from the internet may open a connection in; the VPC's side is opened to
            # the functions' group only (_harden_nat_instances).
            default_allowed_traffic=ec2.NatTrafficDirection.OUTBOUND_ONLY,
            associate_public_ip_address=True,
            user_data=user_data,
        )

    def _harden_nat_instances(self, provider: ec2.NatInstanceProviderV2) -> None:
        provider.connections.allow_from(
            self.function_security_group,
            ec2.Port.tcp(443),
            "functions reach HTTPS APIs (AWS, the LLM provider) through the NAT instance",
        )
        # IMDSv2 only, and an encrypted root volume.
        Aspects.of(self).add(ec2.InstanceRequireImdsv2Aspect())
        for instance in provider.gateway_instances:
            cfn = instance.node.default_child
            if not isinstance(cfn, ec2.CfnInstance):
                raise TypeError(f"unexpected NAT instance resource {cfn!r}")
            cfn.block_device_mappings = [
                ec2.CfnInstance.BlockDeviceMappingProperty(
                    device_name="/dev/xvda",
                    ebs=ec2.CfnInstance.EbsProperty(
                        encrypted=True, volume_type="gp3", volume_size=8
                    ),
                )
            ]
            acknowledge(
                instance,
                "AwsSolutions-EC28",
                "a NAT instance is watched through its status checks and EC2's automatic "
                "recovery; per-minute metrics would add a third of its cost for nothing used",
            )
            acknowledge(
                instance,
                "AwsSolutions-EC29",
                "the NAT instance holds no state and CDK replaces it when its image changes; "
                "termination protection would block that replacement",
            )

    def _build_vpc(self) -> ec2.Vpc:
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            availability_zones=list(self._availability_zones),
            nat_gateways=self._nat_gateways,
            nat_gateway_provider=self.nat_instances,
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

    def _build_gateway_endpoints(self) -> None:
        gateway_subnets = [self.isolated_subnets, self.egress_subnets]
        self.vpc.add_gateway_endpoint(
            "DynamoDbEndpoint",
            service=ec2.GatewayVpcEndpointAwsService.DYNAMODB,
            subnets=gateway_subnets,
        )
        self.vpc.add_gateway_endpoint(
            "S3Endpoint", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=gateway_subnets
        )

    def _build_secrets_endpoint(self) -> ec2.InterfaceVpcEndpoint:
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
