"""Fetch the images a task points at, safely.

A task may carry image URLs where the runtime wants base64 (init_images, mask, image,
imageList[].data, script args). Only two kinds are fetched: `s3://` objects in allowed
buckets, and `https://` URLs whose host resolves to public addresses only. Loopback,
private, link-local (the instance metadata service), multicast and reserved addresses,
other schemes, redirects to any of those, bodies over the size limit and servers slower
than the deadline are refused with a PermanentFailure naming the field.
"""

from __future__ import annotations

import base64
import ipaddress
import socket
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit

import httpx

from sdctl.agent.failures import PermanentFailure, TransientFailure

MAX_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 3
DEADLINE_SECONDS = 30.0


def is_public(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def resolve(host: str) -> list[str]:
    return sorted({info[4][0] for info in socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)})


class Fetcher:
    def __init__(self, *, s3=None, allowed_buckets: set[str] = frozenset(), max_bytes: int = MAX_BYTES,
                 deadline: float = DEADLINE_SECONDS, allowed_ip: Callable[[str], bool] = is_public,
                 resolver: Callable[[str], list[str]] = resolve, schemes: tuple[str, ...] = ("https",),
                 client: httpx.Client | None = None):
        self.s3 = s3
        self.allowed_buckets = set(allowed_buckets)
        self.max_bytes = max_bytes
        self.deadline = deadline
        self.allowed_ip = allowed_ip
        self.resolver = resolver
        self.schemes = schemes
        self.http = client or httpx.Client(follow_redirects=False, timeout=httpx.Timeout(10.0, connect=5.0))

    # -- walking a task's content -------------------------------------------------------------
    def resolve_content(self, content: dict) -> dict:
        """A copy of content with every URL string replaced by the base64 of what it points at."""
        return self._walk(content, "task.content")

    def _walk(self, node, path: str):
        if isinstance(node, dict):
            return {k: self._walk(v, f"{path}.{k}") for k, v in node.items()}
        if isinstance(node, list):
            return [self._walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str) and _looks_like_url(node):
            return base64.b64encode(self.fetch(node, path)).decode()
        return node

    # -- one URL ---------------------------------------------------------------------------------
    def fetch(self, url: str, field: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme == "s3":
            return self._s3(parts.netloc, parts.path.lstrip("/"), field)
        started = time.monotonic()
        for _ in range(MAX_REDIRECTS + 1):
            self._check_url(url, field)
            try:
                return self._get(url, field, started)
            except _Redirect as hop:
                url = hop.to
            except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError,
                    httpx.PoolTimeout, httpx.ConnectTimeout) as e:
                # The network or the server stumbled: the task is retried, not failed.
                raise TransientFailure("input-fetch-failed", f"{field}: {url}: {type(e).__name__}: {e}",
                                       field=field) from None
            except httpx.TimeoutException:
                raise PermanentFailure("input-too-slow", f"{field}: {url} took longer than "
                                       f"{self.deadline:.0f}s", field=field) from None
        raise PermanentFailure("unsafe-input", f"{field}: more than {MAX_REDIRECTS} redirects", field=field)

    def _get(self, url: str, field: str, started: float) -> bytes:
        with self.http.stream("GET", url) as r:
            self._check_peer(r, field)
            if r.is_redirect:
                raise _Redirect(urljoin(url, r.headers.get("location", "")))
            if r.status_code != 200:
                # 429 and 5xx pass: the task is retried (its receive count bounds that);
                # any other status will not change on a retry.
                kind = TransientFailure if r.status_code == 429 or r.status_code >= 500 else PermanentFailure
                raise kind("input-fetch-failed", f"{field}: {url} answered {r.status_code}", field=field)
            declared = int(r.headers.get("content-length") or 0)
            if declared > self.max_bytes:
                raise _too_big(field, self.max_bytes)
            body = bytearray()
            for chunk in r.iter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise _too_big(field, self.max_bytes)
                if time.monotonic() - started > self.deadline:
                    raise PermanentFailure("input-too-slow", f"{field}: {url} took longer than "
                                           f"{self.deadline:.0f}s", field=field)
            return bytes(body)

    def _check_url(self, url: str, field: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in self.schemes:
            raise PermanentFailure("unsafe-input", f"{field}: only {', '.join(self.schemes)} and s3:// URLs are "
                                   f"fetched, not {parts.scheme or 'this'}:", field=field)
        if not parts.hostname:
            raise PermanentFailure("unsafe-input", f"{field}: the URL has no host", field=field)
        try:
            addresses = self.resolver(parts.hostname)
        except OSError:  # a resolver's hiccup must not lose the task: retried (its receive count bounds it)
            raise TransientFailure("input-fetch-failed", f"{field}: cannot resolve {parts.hostname}",
                                   field=field) from None
        bad = [a for a in addresses if not self.allowed_ip(a)]
        if not addresses or bad:
            raise PermanentFailure("unsafe-input", f"{field}: {parts.hostname} resolves to a non-public address "
                                   f"({', '.join(bad) or 'none'}); refused", field=field)

    def _check_peer(self, response: httpx.Response, field: str) -> None:
        """The address actually connected to must be allowed too (DNS may have changed)."""
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if peer and not self.allowed_ip(peer[0]):
            raise PermanentFailure("unsafe-input", f"{field}: connected to non-public {peer[0]}; refused", field=field)

    def _s3(self, bucket: str, key: str, field: str) -> bytes:
        if bucket not in self.allowed_buckets:
            raise PermanentFailure("unsafe-input", f"{field}: bucket {bucket!r} is not an allowed input bucket",
                                   field=field)
        try:
            obj = self.s3.get_object(Bucket=bucket, Key=key)
        except Exception as e:
            kind = TransientFailure if _transient_aws(e) else PermanentFailure
            raise kind("input-fetch-failed", f"{field}: cannot read s3://{bucket}/{key}: {e}", field=field) from None
        if obj.get("ContentLength", 0) > self.max_bytes:
            raise _too_big(field, self.max_bytes)
        return obj["Body"].read()


#: S3 answers that pass with time (throttling, server errors), by error code.
TRANSIENT_AWS_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "InternalError",
                       "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed", "503", "500"}


def _transient_aws(e: Exception) -> bool:
    """Throttling, a 5xx or a network error: worth a retry. NoSuchKey, AccessDenied: not."""
    import botocore.exceptions as bex

    if isinstance(e, (bex.EndpointConnectionError, bex.ConnectionClosedError, bex.ReadTimeoutError,
                      bex.ConnectTimeoutError)):
        return True
    if isinstance(e, bex.ClientError):
        err = e.response.get("Error", {})
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return err.get("Code") in TRANSIENT_AWS_CODES or status >= 500
    return False


class _Redirect(Exception):
    def __init__(self, to: str):
        self.to = to


def _looks_like_url(s: str) -> bool:
    head = s[:12].lower()
    return head.startswith(("http://", "https://", "s3://", "file://", "ftp://", "gopher://"))


def _too_big(field: str, limit: int) -> PermanentFailure:
    return PermanentFailure("input-too-large", f"{field}: the body is over {limit // (1024 * 1024)} MiB", field=field)
