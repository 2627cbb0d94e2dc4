"""The network stack: templates/network.yaml plus three zones built here."""

from __future__ import annotations

import ipaddress

from sdctl.builders.cfn.base import getatt, load_static, prune, ref, sub, tags
from sdctl.builders.cfn.skips import skip
from sdctl.config.ec2 import architecture
from sdctl.config.model import Config

ZONES = 3


def network_template(cfg: Config) -> dict:
    tpl = load_static("network.yaml")
    res = tpl["Resources"]
    res["Vpc"]["Properties"]["CidrBlock"] = cfg.network.cidr
    blocks = subnet_blocks(cfg.network.cidr)
    for n in range(1, ZONES + 1):
        i = n - 1
        az = {"Fn::Select": [i, {"Fn::GetAZs": ""}]}
        res[f"PublicSubnet{n}"] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": ref("Vpc"), "AvailabilityZone": az, "CidrBlock": blocks[i],
            "MapPublicIpOnLaunch": False,
            "Tags": tags({"Name": sub(f"${{ClusterName}}-public-{n}"), "kubernetes.io/role/elb": "1"})}}
        res[f"PublicSubnet{n}Routes"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": ref(f"PublicSubnet{n}"), "RouteTableId": ref("PublicRouteTable")}}
        res[f"PrivateSubnet{n}"] = {"Type": "AWS::EC2::Subnet", "Properties": {
            "VpcId": ref("Vpc"), "AvailabilityZone": az, "CidrBlock": blocks[i + ZONES],
            "Tags": tags({"Name": sub(f"${{ClusterName}}-private-{n}"), "kubernetes.io/role/internal-elb": "1",
                          "karpenter.sh/discovery": ref("ClusterName")})}}
        res[f"PrivateRouteTable{n}"] = {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": ref("Vpc")}}
        res[f"PrivateSubnet{n}Routes"] = {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": ref(f"PrivateSubnet{n}"), "RouteTableId": ref(f"PrivateRouteTable{n}")}}
        route = {"RouteTableId": ref(f"PrivateRouteTable{n}"), "DestinationCidrBlock": "0.0.0.0/0"}
        if cfg.network.nat == "instance":
            route["InstanceId"] = ref("NatInstance")
        else:
            if n == 1 or cfg.network.nat_per_zone:
                res[f"NatIp{n}"] = {"Type": "AWS::EC2::EIP", "DependsOn": "GatewayAttachment",
                                    "Properties": {"Domain": "vpc"}}
                res[f"NatGateway{n}"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
                    "SubnetId": ref(f"PublicSubnet{n}"), "AllocationId": getatt(f"NatIp{n}", "AllocationId")}}
            route["NatGatewayId"] = ref(f"NatGateway{n}" if cfg.network.nat_per_zone else "NatGateway1")
        res[f"PrivateRoute{n}"] = {"Type": "AWS::EC2::Route", "Properties": route}
    if cfg.network.nat == "instance":
        res.update(nat_instance(cfg))
    return prune(tpl)


#: What the NAT instance runs at first boot: the steps of the Amazon VPC user guide's "NAT
#: AMI" for Amazon Linux 2023 (iptables-services, forwarding on, masquerade out of the default
#: route's interface, the FORWARD chain's reject rule removed, rules saved for reboots).
NAT_USER_DATA = """#!/bin/bash
set -euxo pipefail
dnf install -y iptables-services
systemctl enable --now iptables
echo "net.ipv4.ip_forward=1" > /etc/sysctl.d/90-sdctl-nat.conf
sysctl -p /etc/sysctl.d/90-sdctl-nat.conf
iface=$(ip route show default | awk '{print $5; exit}')
iptables -t nat -A POSTROUTING -o "$iface" -j MASQUERADE
iptables -F FORWARD
service iptables save
"""


def _nat_rules(cidr: str, why: str) -> list[dict]:
    return [{"IpProtocol": proto, "FromPort": lo, "ToPort": hi, "CidrIp": cidr, "Description": f"{proto} {why}"}
            for proto, lo, hi in (("tcp", 0, 65535), ("udp", 0, 65535), ("icmp", -1, -1))]


def nat_instance(cfg: Config) -> dict:
    """One EC2 NAT instance in the first public subnet: source/destination check off, a
    public IPv4 address, reachable only from the VPC, IMDSv2 only, an encrypted root volume,
    and a CloudWatch alarm that recovers it onto new hardware when its system check fails."""
    return {
        "NatInstanceSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "sdctl NAT instance, forwards outbound traffic of the VPC",
            "VpcId": ref("Vpc"),
            # TCP, UDP and ICMP, each in full: what instances in private subnets send out.
            "SecurityGroupIngress": _nat_rules(cfg.network.cidr, "from the VPC, to be forwarded"),
            "SecurityGroupEgress": _nat_rules("0.0.0.0/0", "out to the internet"),
            "Tags": tags({"Name": sub("${ClusterName}-nat")})}},
        "NatInstance": skip({"Type": "AWS::EC2::Instance", "DependsOn": "PublicRoute", "Properties": {
            "ImageId": "{{resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-"
                       f"{architecture(cfg.network.nat_instance_type)}}}}}",
            "InstanceType": cfg.network.nat_instance_type,
            "SourceDestCheck": False,
            "Monitoring": True,
            "EbsOptimized": True,
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {
                "VolumeType": "gp3", "VolumeSize": 8, "Encrypted": True, "DeleteOnTermination": True}}],
            "NetworkInterfaces": [{"DeviceIndex": "0", "SubnetId": ref("PublicSubnet1"),
                                   "AssociatePublicIpAddress": True,
                                   "GroupSet": [ref("NatInstanceSecurityGroup")]}],
            "UserData": {"Fn::Base64": NAT_USER_DATA},
            "Tags": tags({"Name": sub("${ClusterName}-nat")})}}, "CKV_AWS_88"),
        "NatInstanceRecovery": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmDescription": "Recover the sdctl NAT instance when its host fails (EC2 auto recovery).",
            "Namespace": "AWS/EC2", "MetricName": "StatusCheckFailed_System", "Statistic": "Maximum",
            "Dimensions": [{"Name": "InstanceId", "Value": ref("NatInstance")}],
            "Period": 60, "EvaluationPeriods": 2, "Threshold": 0, "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [sub("arn:${AWS::Partition}:automate:${AWS::Region}:ec2:recover")]}},
    }


def subnet_blocks(cidr: str) -> list[str]:
    """Six /19 blocks of the /16: three public, then three private (8,190 addresses each)."""
    return [str(b) for b in list(ipaddress.ip_network(cidr, strict=False).subnets(new_prefix=19))[: 2 * ZONES]]


def network_parameters(cfg: Config) -> dict[str, str]:
    return {"ClusterName": cfg.cluster_name}
