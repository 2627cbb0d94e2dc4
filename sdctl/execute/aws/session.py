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
    principal_arn: str  # the caller, as an IAM ARN (a role's without its path; see iam_principal)
    profile: str | None = None

    def client(self, name: str):
        return self.session.client(name, config=client_config(name))

    def iam_principal(self) -> str:
        """The caller's IAM principal ARN as IAM spells it, path included: what an EKS access
        entry needs. Asked of IAM (GetRole) once, when first needed."""
        cached = getattr(self, "_iam_principal", None)
        if cached is None:
            cached = role_arn_with_path(self.client("iam"), self.principal_arn)
            self._iam_principal = cached
        return cached


def client_config(service: str):
    """S3 clients sign with SigV4, presigned URLs included: botocore presigns S3 with Signature
    Version 2 unless told otherwise, which S3 refuses for buckets made since 24 June 2020
    (Amazon S3 User Guide, "Signature Version 2 turned off (deprecated)")."""
    if service != "s3":
        return None
    from botocore.config import Config

    return Config(signature_version="s3v4")


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
               principal_arn=principal_from_caller(ident["Arn"]), profile=profile)


def session_only(*, region: str | None, profile: str | None):
    """A boto3 session and its region, without asking STS who the caller is: enough to presign
    (an EKS token is a presigned URL, made on every kubectl or helm call)."""
    import boto3
    import botocore.exceptions as bex

    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except bex.ProfileNotFound:
        raise CredentialsError(f"AWS profile {profile!r} not found",
                               hint="check ~/.aws/config or drop --profile") from None
    if not session.region_name:
        raise CredentialsError("no AWS region set", hint="pass --region or set AWS_REGION")
    if session.get_credentials() is None:
        raise CredentialsError("no AWS credentials found",
                               hint="set AWS_PROFILE (or --profile), or AWS_ACCESS_KEY_ID and "
                                    "AWS_SECRET_ACCESS_KEY, or run `aws sso login`")
    return session, session.region_name


def principal_from_caller(arn: str) -> str:
    """STS assumed-role session ARNs become role ARNs, without the role's path, which the
    session ARN does not carry (role_arn_with_path recovers it)."""
    m = re.match(r"^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+$", arn)
    if m:
        return f"arn:{m.group(1)}:iam::{m.group(2)}:role/{m.group(3)}"
    return arn


def role_arn_with_path(iam, arn: str) -> str:
    """A role's real ARN, path included. IAM Identity Center (SSO) roles live under
    role/aws-reserved/sso.amazonaws.com/...; EKS rejects an access entry for the pathless ARN
    ("invalid principal"), and only after the cluster has been created for ~15 minutes."""
    import botocore.exceptions as bex

    m = re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/(.+)$", arn)
    if not m or "/" in m.group(1):
        return arn
    try:
        return iam.get_role(RoleName=m.group(1))["Role"]["Arn"]
    except (bex.ClientError, bex.BotoCoreError) as e:
        raise CredentialsError(
            f"cannot read role {m.group(1)} (iam:GetRole) to find its full ARN for the cluster's admin "
            f"access entry: {e}",
            hint="allow iam:GetRole on it, or set cluster.adminPrincipalArn in sdctl.yaml to the role's "
                 "ARN with its path (IAM console, Roles)") from None
