"""Task inputs are fetched only from allowed S3 buckets and public https hosts."""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from sdctl.agent.failures import PermanentFailure
from sdctl.agent.inputs import Fetcher, is_public
from tests.conftest import ServerThread


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.0.0.5", "172.16.3.4", "192.168.1.1", "169.254.169.254",
                                "100.64.0.1", "0.0.0.0", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1",
                                "224.0.0.1", "fd00:ec2::254"])
def test_non_public_addresses_are_refused(ip):
    assert not is_public(ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "52.94.236.248", "2600:1f18::1"])
def test_public_addresses_are_allowed(ip):
    assert is_public(ip)


def refused(fetcher: Fetcher, url: str) -> PermanentFailure:
    with pytest.raises(PermanentFailure) as e:
        fetcher.resolve_content({"init_images": [url]})
    assert e.value.field == "task.content.init_images[0]"
    return e.value


@pytest.mark.parametrize("url", [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://127.0.0.1/x.png", "https://10.1.2.3/x.png", "https://[::1]/x.png",
    "http://example.com/x.png", "file:///etc/passwd", "ftp://example.com/x.png", "gopher://x/",
])
def test_metadata_loopback_private_and_other_schemes_are_refused(url):
    err = refused(Fetcher(resolver=lambda host: [host.strip("[]")] if host[0].isdigit() or ":" in host
                          else ["93.184.216.34"]), url)
    assert err.code == "unsafe-input"


def test_a_name_that_resolves_to_a_private_address_is_refused():
    err = refused(Fetcher(resolver=lambda host: ["10.0.0.7"]), "https://internal.example.com/a.png")
    assert "non-public" in err.message


def test_a_name_that_does_not_resolve_now_is_retried_not_failed():
    """A resolver's hiccup (EAI_AGAIN) or a name not there yet: the task goes back on the queue
    (TransientFailure; its receive count bounds the retries) instead of failing at once."""
    import socket

    from sdctl.agent.failures import TransientFailure

    def hiccup(host):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(TransientFailure) as e:
        Fetcher(resolver=hiccup).resolve_content({"init_images": ["https://images.example.com/a.png"]})
    assert e.value.code == "input-fetch-failed" and "cannot resolve images.example.com" in e.value.message


def test_s3_inputs_only_from_allowed_buckets(aws):
    aws.s3.create_bucket(Bucket="inputs", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    aws.s3.put_object(Bucket="inputs", Key="a.png", Body=b"PNGDATA")
    f = Fetcher(s3=aws.s3, allowed_buckets={"inputs"})
    out = f.resolve_content({"init_images": ["s3://inputs/a.png"], "prompt": "keep me"})
    assert out == {"init_images": [base64.b64encode(b"PNGDATA").decode()], "prompt": "keep me"}
    assert refused(f, "s3://someone-elses/a.png").code == "unsafe-input"
    assert refused(f, "s3://inputs/missing.png").code == "input-fetch-failed"


@pytest.fixture(scope="module")
def web():
    """A test web server on loopback. The Fetcher under test is told loopback counts as
    'public' here (allowed_ip), so redirects, size and speed limits can be exercised."""
    async def ok(request):
        return Response(b"IMAGE", media_type="image/png")

    async def to_metadata(request):
        return RedirectResponse("https://169.254.169.254/latest/meta-data/", status_code=302)

    async def to_ok(request):
        return RedirectResponse("/ok", status_code=302)

    async def big(request):
        return Response(b"x" * 2048, media_type="image/png")

    async def slow(request):
        import asyncio

        async def body():
            for _ in range(20):
                yield b"x"
                await asyncio.sleep(0.2)
        return StreamingResponse(body(), media_type="image/png")

    app = Starlette(routes=[Route("/ok", ok), Route("/meta", to_metadata), Route("/hop", to_ok),
                            Route("/big", big), Route("/slow", slow)])
    with ServerThread(app) as server:
        yield server.url


def loopback_fetcher(**kw) -> Fetcher:
    return Fetcher(allowed_ip=lambda ip: ip == "127.0.0.1", schemes=("http", "https"), **kw)


def test_fetches_and_follows_safe_redirects(web):
    f = loopback_fetcher()
    assert f.fetch(f"{web}/ok", "f") == b"IMAGE"
    assert f.fetch(f"{web}/hop", "f") == b"IMAGE"


def test_redirect_to_the_metadata_service_is_refused(web):
    err = refused(loopback_fetcher(), f"{web}/meta")
    assert err.code == "unsafe-input" and "169.254.169.254" in err.message


def test_bodies_over_the_limit_and_slow_servers_are_refused(web):
    assert refused(loopback_fetcher(max_bytes=1024), f"{web}/big").code == "input-too-large"
    assert refused(loopback_fetcher(deadline=1.0), f"{web}/slow").code == "input-too-slow"


def test_server_errors_and_network_trouble_are_retried_not_failed(web):
    """Throttling, a 5xx or a dropped connection on an input fetch passes with time: the task
    is retried (bounded by its receive count), not failed for good."""
    from sdctl.agent.failures import TransientFailure

    def answers(status):
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        return Starlette(routes=[Route("/x", lambda request: Response(b"", status_code=status))])

    for status, kind in ((503, TransientFailure), (429, TransientFailure), (404, PermanentFailure)):
        with ServerThread(answers(status)) as server:
            with pytest.raises(kind):
                loopback_fetcher().fetch(f"{server.url}/x", "f")
    with pytest.raises(TransientFailure):  # nothing listens there
        loopback_fetcher().fetch("http://127.0.0.1:9/x", "f")


def test_s3_throttling_is_retried_and_a_missing_key_is_not():
    from botocore.exceptions import ClientError

    from sdctl.agent.failures import TransientFailure

    class S3:
        def __init__(self, code, status):
            self.error = ClientError({"Error": {"Code": code, "Message": code},
                                      "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

        def get_object(self, **kw):
            raise self.error

    for code, status, kind in (("SlowDown", 503, TransientFailure), ("InternalError", 500, TransientFailure),
                               ("NoSuchKey", 404, PermanentFailure), ("AccessDenied", 403, PermanentFailure)):
        with pytest.raises(kind):
            Fetcher(s3=S3(code, status), allowed_buckets={"in"}).fetch("s3://in/k", "f")
