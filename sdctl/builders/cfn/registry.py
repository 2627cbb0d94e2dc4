"""The edge stack's container image resources: an ECR repository per image sdctl builds and
the CodeBuild project that builds them (`sdctl images publish` without a local Docker)."""

from __future__ import annotations

import json

from sdctl.builders.cfn.base import (
    LOG_RETENTION_DAYS,
    allow,
    getatt,
    output,
    policy,
    ref,
    sub,
    trust,
)
from sdctl.builders.cfn.skips import skip
from sdctl.builders.images import BUILDSPEC, IMAGES, build_project_name, repository_name
from sdctl.builders.names import artifacts_bucket, repository_id
from sdctl.config.model import Config


def image_resources(cfg: Config, r: dict, o: dict) -> None:
    """One ECR repository per image sdctl builds, and the CodeBuild project that builds them in
    the user's account; `r` and `o` are the edge template's resources and outputs."""
    stack = cfg.stack_name
    artifacts = artifacts_bucket(stack, "${AWS::AccountId}", "${AWS::Region}")
    repos = []
    for key, (image, _) in IMAGES.items():
        lid = repository_id(image)
        repos.append(getatt(lid, "Arn"))
        r[lid] = {"Type": "AWS::ECR::Repository", "Properties": {
            "RepositoryName": repository_name(stack, image),
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "MUTABLE",
            "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": getatt("TopicKey", "Arn")},
            "EmptyOnDelete": True,
            "LifecyclePolicy": {"LifecyclePolicyText": json.dumps({"rules": [{
                "rulePriority": 1, "description": "keep the 20 newest images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20},
                "action": {"type": "expire"}}]}, separators=(",", ":"))}}}
        skip(r[lid], "CKV_AWS_51")
        o[f"{lid}Uri"] = output(getatt(lid, "RepositoryUri"), f"the {key} image's repository")
    project = build_project_name(stack)
    log_group = f"/aws/codebuild/{project}"
    r["ImageBuildLogGroup"] = {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": log_group, "RetentionInDays": LOG_RETENTION_DAYS, "KmsKeyId": getatt("TopicKey", "Arn")}}
    r["ImageBuildRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": trust("codebuild.amazonaws.com"),
        "Policies": [{"PolicyName": "build-and-push-images", "PolicyDocument": policy(
            allow("ecr:GetAuthorizationToken", "*"),
            allow(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                   "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage"],
                  repos),
            allow(["s3:GetObject", "s3:GetObjectVersion"],
                  sub(f"arn:${{AWS::Partition}}:s3:::{artifacts}/images/*")),
            allow(["logs:CreateLogStream", "logs:PutLogEvents"], getatt("ImageBuildLogGroup", "Arn")),
            allow(["kms:GenerateDataKey*", "kms:Decrypt", "kms:Encrypt"], getatt("TopicKey", "Arn")),
        )}]}}
    r["ImageBuildProject"] = {"Type": "AWS::CodeBuild::Project", "Properties": {
        "Name": project,
        "Description": "sdctl: build the queue agent and diffusers runtime images (sdctl images publish)",
        "ServiceRole": getatt("ImageBuildRole", "Arn"),
        "Source": {"Type": "S3", "Location": sub(f"{artifacts}/images/source.zip"), "BuildSpec": BUILDSPEC},
        "Artifacts": {"Type": "NO_ARTIFACTS"},
        "Environment": {"Type": "LINUX_CONTAINER", "ComputeType": "BUILD_GENERAL1_MEDIUM",
                        "Image": "aws/codebuild/standard:7.0", "PrivilegedMode": True,
                        "EnvironmentVariables": [{"Name": "AWS_ACCOUNT_ID", "Value": ref("AWS::AccountId")}]},
        "EncryptionKey": getatt("TopicKey", "Arn"),
        "TimeoutInMinutes": 90,
        "LogsConfig": {"CloudWatchLogs": {"Status": "ENABLED", "GroupName": log_group}}}}
    o["ImageBuildProject"] = output(ref("ImageBuildProject"))
