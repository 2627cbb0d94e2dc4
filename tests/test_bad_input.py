"""Bad input everywhere, not only at the API: generated YAML documents for the config loader
and generated request bodies for the built-in runtime's HTTP API. (The agent's malformed
queue messages are in tests/test_agent.py, beside the moto stack they need.)

The runtime is the real one (sdctl.runtime.server over the tiny offline model), driven in
process through Starlette's test client; sizes are drawn mostly small so a valid request
renders in milliseconds."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sdctl.config import parse
from sdctl.errors import ConfigError
from tests.conftest import EXAMPLE

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())


def paths(data, prefix=()):
    """Every place in a document where a value sits."""
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths(v, prefix + (i,))


EXAMPLE_PATHS = [p for p in paths(EXAMPLE_DATA) if p]


def replaced(data, path, value):
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[head] = replaced(copy[head], rest, value)
    return copy


def assert_refused_cleanly(text: str) -> None:
    """Either a config, or a ConfigError whose every problem names a field path (or the
    document) and says what is wrong; never any other exception."""
    try:
        parse(text)
    except ConfigError as e:
        assert e.exit_code == 2 and e.problems
        for problem in e.problems:
            assert isinstance(problem.get("path"), str) and problem.get("message")


@settings(derandomize=True, max_examples=200, deadline=None)
@given(document=values)
def test_any_yaml_document_is_a_config_or_a_clean_config_error(document):
    assert_refused_cleanly(yaml.safe_dump(document))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(path=st.sampled_from(EXAMPLE_PATHS), value=values)
def test_any_field_of_the_example_set_to_anything_is_refused_with_its_path(path, value):
    """The example config with one field replaced by an arbitrary value: a type mistake
    anywhere (a list where a number goes, a mapping for a name) is a field-path message."""
    assert_refused_cleanly(yaml.safe_dump(replaced(EXAMPLE_DATA, path, value)))


@settings(derandomize=True, max_examples=100, deadline=None)
@given(text=st.text(max_size=200))
@example(text="\x08")  # found: a control character escaped as a raw yaml.ReaderError
@example(text="=")  # found: YAML's `value` tag has no safe constructor (a ConstructorError)
def test_any_text_is_a_config_or_a_clean_config_error(text):
    assert_refused_cleanly(text)


FIELDS = ["prompt", "negative_prompt", "seed", "cfg_scale", "sampler_name", "batch_size", "n_iter",
          "denoising_strength", "override_settings", "init_images", "styles", "resize_mode", "upscaling_resize",
          "image", "requests"]
small = st.sampled_from([8, 16, 24])
request_bodies = st.one_of(
    st.fixed_dictionaries({"width": st.one_of(small, scalars), "height": st.one_of(small, scalars),
                           "steps": st.one_of(st.integers(1, 3), scalars)},
                          optional={k: values for k in FIELDS}),
    values,
)
PATHS = ["/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdctl/v1/txt2img-batch", "/sdapi/v1/extra-single-image",
         "/sdapi/v1/options"]


@pytest.fixture(scope="module")
def runtime_client(tiny_engine):
    from starlette.testclient import TestClient

    from sdctl.runtime.server import create_app

    with TestClient(create_app(tiny_engine), raise_server_exceptions=False) as client:
        yield client


@settings(derandomize=True, max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=request_bodies)
def test_the_runtime_answers_any_json_body_without_a_server_error(runtime_client, path, body):
    if path == "/sdapi/v1/options" and isinstance(body, dict):
        body.pop("sd_model_checkpoint", None)  # switching models is a valid request, not bad input
    if isinstance(body, dict):  # no 512², 20-step default renders: bad values are kept, absent ones made small
        body.setdefault("steps", 1), body.setdefault("width", 8), body.setdefault("height", 8)
    r = runtime_client.post(path, content=json.dumps(body, allow_nan=True))
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert r.json().get("detail")


@settings(derandomize=True, max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), raw=st.binary(max_size=300))
def test_the_runtime_answers_any_bytes_without_a_server_error(runtime_client, path, raw):
    r = runtime_client.post(path, content=raw)
    assert r.status_code < 500, (path, raw, r.text)


def test_nan_and_infinity_are_refused_by_name(runtime_client):
    """Python's json reads them, JSON has no such numbers: echoed back in `parameters` they made
    the runtime's own answer fail with a 500 (found by the test above)."""
    for constant in ("NaN", "Infinity", "-Infinity"):
        r = runtime_client.post("/sdapi/v1/txt2img", content=f'{{"prompt": "a fox", "anything": {constant}}}')
        assert r.status_code == 422 and r.json()["detail"] == f"{constant} is not a JSON number"
    deep = runtime_client.post("/sdapi/v1/txt2img", content="[" * 100_000)
    assert deep.status_code == 422 and deep.json()["detail"] == "the body is nested too deeply"
    ok = runtime_client.post("/sdapi/v1/txt2img", content='{"prompt": "a fox", "steps": 1, "width": 8, "height": 8}')
    assert ok.status_code == 200
