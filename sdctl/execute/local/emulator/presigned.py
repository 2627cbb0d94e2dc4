"""Presigned URLs on the emulator while it enforces IAM: accepted as AWS accepts them.

A presigned URL carries its SigV4 signature in the query string (X-Amz-Algorithm,
X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders, X-Amz-Signature; Amazon S3 API
Reference, "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)"), not in
an Authorization header. moto's IAM check reads only the header, so every presigned request
failed with a 500 once the local stack enforced IAM, and every full-size link of the local
gallery was broken. Here such a request is checked as S3 checks it:

- the signature is computed again with botocore's own query signer (the canonical request
  with the host header and an unsigned payload) from the access key's secret, and a different
  one is refused (403 SignatureDoesNotMatch);
- a URL past X-Amz-Date + X-Amz-Expires is refused (403 AccessDenied, "Request has expired"),
  and so is an X-Amz-Expires over 604,800 s (a week, the SigV4 limit);
- the action is then authorized against the key's policy like any signed call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

WEEK = 604_800


def _query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query, keep_blank_values=True)


def apply() -> None:
    from moto.iam.access_control import IAMRequestBase

    if getattr(IAMRequestBase, "_sdctl_presigned", False):
        return
    original_init, original_check = IAMRequestBase.__init__, IAMRequestBase.check_signature

    def init(self, account_id, method, path, data, body, headers, action):
        query = _query(path)
        presigned = "Authorization" not in headers and "X-Amz-Signature" in query and "X-Amz-Credential" in query
        if presigned:  # what the header would say, so moto finds the key, region and service
            headers = {**dict(headers), "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={query['X-Amz-Credential'][0]}, "
                f"SignedHeaders={query.get('X-Amz-SignedHeaders', ['host'])[0]}, "
                f"Signature={query['X-Amz-Signature'][0]}")}
        original_init(self, account_id=account_id, method=method, path=path, data=data, body=body, headers=headers,
                      action=action)
        self._sdctl_query = query if presigned else None

    def check_signature(self) -> None:
        query = getattr(self, "_sdctl_query", None)
        if query is None:
            return original_check(self)
        _check_presigned(self, query)

    IAMRequestBase.__init__ = init
    IAMRequestBase.check_signature = check_signature
    IAMRequestBase._sdctl_presigned = True


def _expired(message: str):
    from moto.s3.exceptions import S3ClientError

    return S3ClientError("AccessDenied", message)


def _check_presigned(request, query: dict[str, list[str]]) -> None:
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest

    stamp = query.get("X-Amz-Date", [""])[0]
    try:
        signed_at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expires = int(query.get("X-Amz-Expires", ["0"])[0])
    except ValueError:
        raise _expired("X-Amz-Date or X-Amz-Expires is not valid") from None
    if not 1 <= expires <= WEEK:
        raise _expired("X-Amz-Expires must be between 1 and 604800 seconds")
    if datetime.now(UTC) > signed_at + timedelta(seconds=expires):
        raise _expired("Request has expired")
    parts = urlsplit(request._path)
    # encoded as SigV4's canonical query string encodes (RFC 3986 unreserved characters kept)
    unsigned = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, vs in query.items()
                        if k != "X-Amz-Signature" for v in vs)
    host = request._headers.get("Host") or request._headers.get("host")
    url = f"http://{host}{parts.path}?{unsigned}"
    aws = AWSRequest(method=request._method, url=url)
    aws.context["timestamp"] = stamp
    auth = S3SigV4QueryAuth(request._access_key.create_credentials(), request._service, request._region,
                            expires=expires)
    expected = auth.signature(auth.string_to_sign(aws, auth.canonical_request(aws)), aws)
    if expected != query["X-Amz-Signature"][0]:
        request._raise_signature_does_not_match()
