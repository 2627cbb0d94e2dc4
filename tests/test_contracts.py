"""Contracts written once (sdctl/contracts/): the one copy that must exist twice, the API
handler's (it ships alone in its Lambda zip), is kept equal to the original here; the other
sides import the original."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src import contract as copy
from lambda_src import handler
from sdctl.contracts import tasks as contract


def test_the_handlers_copy_of_the_task_contract_is_the_contract():
    assert copy.TASK_TYPES == contract.TASK_TYPES
    assert copy.ID_PATTERN.pattern == contract.ID_PATTERN.pattern
    assert copy.PREFIX_SEGMENT.pattern == contract.PREFIX_SEGMENT.pattern
    datetime.strptime(handler._now(), contract.TIMESTAMP_FORMAT)  # the same timestamps in the store
    assert (copy.STATES, copy.FINAL, copy.STATUS_INDEX) == (contract.STATES, contract.FINAL, contract.STATUS_INDEX)
    assert (copy.PRIORITIES, copy.DEFAULT_PRIORITY) == (contract.PRIORITIES, contract.DEFAULT_PRIORITY)
    assert (copy.CLIENT_TAG, copy.DEFAULT_CLIENT) == (contract.CLIENT_TAG, contract.DEFAULT_CLIENT)
    assert (copy.TTL_MAX_SECONDS, copy.DEADLINE_POLICIES) == (contract.TTL_MAX_SECONDS, contract.DEADLINE_POLICIES)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
                 st.text(alphabet="0123456789-:TZ+. ", max_size=30), st.integers(), st.none()))
def test_the_handler_and_the_agent_read_a_deadline_alike(value):
    assert copy.parse_deadline(value) == contract.parse_deadline(value)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet="ab./-_*'()!~ ", max_size=12))
def test_the_handler_and_the_agent_agree_on_every_prefix(prefix):
    assert copy.safe_prefix(prefix) == contract.is_safe_prefix(prefix)


def test_the_other_sides_use_the_contract_itself():
    from sdctl.agent import tasks as agent_tasks
    from sdctl.config import model
    from sdctl.operate import tasks as store

    assert model.TASK_TYPES is contract.TASK_TYPES
    assert agent_tasks.ID_PATTERN is contract.ID_PATTERN and agent_tasks.is_safe_prefix is contract.is_safe_prefix
    assert store.STATES is contract.STATES and store.FINAL is contract.FINAL


@pytest.mark.parametrize("prefix", ["a//b", "a/./b", "/abs", "a/../b", "sp ace"])
def test_the_agent_refuses_a_prefix_the_api_refuses(prefix):
    """The agent's check was weaker than the API's: `a//b` and `a/./b` passed it. A task that
    reaches the queue another way (published straight to SNS) gets the same rule."""
    import json

    from sdctl.agent.failures import PermanentFailure
    from sdctl.agent.tasks import parse_message

    assert not copy.safe_prefix(prefix)
    body = json.dumps({"task": {"metadata": {"id": "t1", "runtime": "r", "prefix": prefix}, "content": {}}})
    with pytest.raises(PermanentFailure) as e:
        parse_message(body)
    assert e.value.field == "task.metadata.prefix"


def test_every_stack_output_another_part_reads_is_one_the_templates_write():
    """The output keys (builders/names.py) that releases, `sdctl` operate commands and the
    cluster stack's parameters read by name, against the templates that write them."""
    from sdctl.builders import names as n
    from sdctl.builders.cfn.stacks import stacks
    from sdctl.builders.images import IMAGES
    from sdctl.config import parse
    from tests.helpers import ALL_OPTIONS

    cfg = parse(ALL_OPTIONS)
    specs = {s.key: s.template for s in stacks(cfg)}
    edge, cluster = specs["edge"]["Outputs"], specs["cluster"]
    for rt in cfg.runtimes:
        assert {n.queue_url_key(rt.name), n.dead_letter_url_key(rt.name), n.queue_arn_key(rt.name)} <= edge.keys()
        assert n.queue_arn_key(rt.name) in cluster["Parameters"]
        assert f"{n.runtime_role_id(rt.name)}Arn" in cluster["Outputs"]
    for image, _ in IMAGES.values():
        assert f"{n.repository_id(image)}Uri" in edge
    bucket = n.artifacts_bucket(cfg.stack_name, "${AWS::AccountId}", "${AWS::Region}")
    project = specs["edge"]["Resources"]["ImageBuildProject"]["Properties"]
    assert project["Source"]["Location"] == {"Fn::Sub": f"{bucket}/images/source.zip"}


def test_the_lambda_zip_runs_on_its_own(tmp_path):
    """What Lambda unpacks: the handler and its copy of the contract at the zip's root, imported
    as top-level modules with no sdctl installed beside them."""
    import io
    import subprocess
    import sys
    import zipfile

    from sdctl.execute.aws.artifacts import lambda_zip

    zipfile.ZipFile(io.BytesIO(lambda_zip())).extractall(tmp_path)
    probe = ("import sys; sys.modules['sdctl'] = None; import handler; "
             "print(handler.validate({'task': {'metadata': {'id': 'a', 'runtime': 'r', 'tasktype': 'pipeline', "
             "'ttlSeconds': 5}, 'content': {}}}, {'r': 'comfyui'})['metadata']['deadline'][-1])")
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Z"


def test_every_error_code_the_agent_raises_is_in_the_contract_and_its_page():
    """The codes a failed task carries are written once (sdctl/contracts/tasks.py ERROR_CODES):
    the agent raises no other, and docs/wire-contract.md lists exactly them."""
    import re
    from pathlib import Path

    from sdctl.contracts.tasks import ERROR_CODES, error_codes_markdown

    root = Path(__file__).resolve().parent.parent
    raised = set()
    for path in (root / "sdctl" / "agent").glob("*.py"):
        raised |= set(re.findall(r'Failure\(\s*"([a-z-]+)"', path.read_text()))
    assert raised and raised <= set(ERROR_CODES), raised - set(ERROR_CODES)
    page = (root / "docs" / "wire-contract.md").read_text()
    block = page.split("<!-- error-codes: generated from sdctl/contracts/tasks.py ERROR_CODES -->\n", 1)[1]
    assert block.split("\n<!-- /error-codes -->", 1)[0] == error_codes_markdown()
    assert "`input-fetch-failed`" in page and "`unsafe-input`" in page

