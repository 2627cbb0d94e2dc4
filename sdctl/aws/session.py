"""Credentials and region the AWS way, with a one-line error when they are missing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sdctl.errors import SdctlError


class CredentialsError(SdctlError):
    pass


@dataclass
class Aws:
    session: object
    region: str
    account: str
    principal_arn: str

    def client(self, name: str):
        return self.session.client(name)


def connect(*, region: str | None, profile: str | None, config_region: str | None = None) -> Aws:
    import boto3
    import botocore.exceptions as bex

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except bex.ProfileNotFound:
        raise CredentialsError(f"AWS profile {profile!r} not found",
                               hint="check ~/.aws/config or drop --profile") from None
    region = session.region_name if region else None
    region = region or config_region or session.region_name
    if not region:
        raise CredentialsError("no AWS region set", hint="pass --region, set AWS_REGION, or set region in sdctl.yaml")
    session = boto3.session.Session(profile_name=profile, region_name=region)
    try:
        ident = session.client("sts").get_caller_identity()
    except bex.NoCredentialsError:
        raise CredentialsError("no AWS credentials found",
                               hint="set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, or run `aws sso login`") from None
    except bex.EndpointConnectionError as e:
        raise CredentialsError(f"cannot reach AWS: {e}",
                               hint="check the network, the region, and AWS_ENDPOINT_URL if it is set") from None
    except (bex.ClientError, bex.BotoCoreError) as e:
        raise CredentialsError(f"AWS rejected the credentials: {e}",
                               hint="refresh them (e.g. `aws sso login`) and try again") from None
    return Aws(session=session, region=region, account=ident["Account"],
               principal_arn=principal_from_caller(ident["Arn"]))


def principal_from_caller(arn: str) -> str:
    """An IAM principal for an access entry: STS assumed-role session ARNs become role ARNs.
    (A role with a path needs iam:GetRole to recover it; see role_arn_with_path.)"""
    m = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$", arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn


def role_arn_with_path(iam, arn: str) -> str:
    m = re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/(.+)$", arn)
    if not m or "/" in m.group(1):
        return arn
    try:
        return iam.get_role(RoleName=m.group(1))["Role"]["Arn"]
    except Exception:
        return arn
