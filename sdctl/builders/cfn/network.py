"""The network stack: templates/network.yaml plus three zones built here."""

from __future__ import annotations

import ipaddress

from sdctl.builders.cfn.base import getatt, load_static, prune, ref, sub, tags
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
        if n == 1 or cfg.network.nat_per_zone:
            res[f"NatIp{n}"] = {"Type": "AWS::EC2::EIP", "DependsOn": "GatewayAttachment",
                                "Properties": {"Domain": "vpc"}}
            res[f"NatGateway{n}"] = {"Type": "AWS::EC2::NatGateway", "Properties": {
                "SubnetId": ref(f"PublicSubnet{n}"), "AllocationId": getatt(f"NatIp{n}", "AllocationId")}}
        nat = f"NatGateway{n}" if cfg.network.nat_per_zone else "NatGateway1"
        res[f"PrivateRoute{n}"] = {"Type": "AWS::EC2::Route", "Properties": {
            "RouteTableId": ref(f"PrivateRouteTable{n}"), "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": ref(nat)}}
    return prune(tpl)


def subnet_blocks(cidr: str) -> list[str]:
    """Six /19 blocks of the /16: three public, then three private (8,190 addresses each)."""
    return [str(b) for b in list(ipaddress.ip_network(cidr, strict=False).subnets(new_prefix=19))[: 2 * ZONES]]


def network_parameters(cfg: Config) -> dict[str, str]:
    return {"ClusterName": cfg.cluster_name}
