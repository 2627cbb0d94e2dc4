"""The artifacts bucket and the API handler's deterministic zip."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

from sdctl.builders.names import partition

FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def deterministic_zip(files: dict[str, bytes]) -> bytes:
    """A zip of name -> content whose bytes depend only on the names and contents."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name])
    return buf.getvalue()


def lambda_zip() -> bytes:
    """The functions' package (lambda_src/: the API handler, the webhook deliverer and their
    modules; the functions' Handler settings name lambda_src.handler.handler and
    lambda_src.webhooks.handler) and the contracts they import (sdctl/contracts, standard
    library only, under sdctl/ with a bare package file), as a zip whose bytes depend only on
    their content. Nothing else of sdctl goes in."""
    import lambda_src
    import sdctl.contracts

    files = {f"lambda_src/{path.name}": path.read_bytes()
             for path in sorted(Path(lambda_src.__file__).parent.glob("*.py"))}
    files["sdctl/__init__.py"] = b'"""sdctl\'s contracts, as the Lambda functions ship them."""\n'
    root = Path(sdctl.contracts.__file__).parent
    for path in sorted(root.rglob("*.py")):  # with the runtime types' package (contracts/runtimes)
        files[f"sdctl/contracts/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return deterministic_zip(files)


def lambda_key(data: bytes) -> str:
    return f"lambda/handler-{hashlib.sha256(data).hexdigest()[:16]}.zip"



def ensure_bucket(s3, name: str, region: str) -> bool:
    """Create the artifacts bucket (private, encrypted, TLS only) unless it exists. True if created."""
    try:
        s3.head_bucket(Bucket=name)
        return False
    except s3.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **kwargs)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    arn = partition(region)
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:{arn}:s3:::{name}", f"arn:{arn}:s3:::{name}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    return True


def upload_once(s3, bucket: str, key: str, data: bytes) -> bool:
    """Upload unless an object with that (content-addressed) key exists. True if uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except s3.exceptions.ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        return True


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object and version. Returns how many were deleted; 0 if the bucket is gone."""
    deleted = 0
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(keys), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[i:i + 1000], "Quiet": True})
                deleted += len(keys[i:i + 1000])
    except s3.exceptions.NoSuchBucket:
        return 0
    return deleted
