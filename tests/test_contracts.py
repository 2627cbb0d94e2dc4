"""Contracts written once (sdctl/contracts/): the one copy that must exist twice, the API
handler's (it ships alone in its Lambda zip), is kept equal to the original here; the other
sides import the original."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambda_src import handler
from sdctl.contracts import tasks as contract


def test_the_handlers_copy_of_the_task_contract_is_the_contract():
    assert handler.TASK_TYPES == contract.TASK_TYPES
    assert handler.ID_PATTERN.pattern == contract.ID_PATTERN.pattern
    assert handler.PREFIX_SEGMENT.pattern == contract.PREFIX_SEGMENT.pattern
    datetime.strptime(handler._now(), contract.TIMESTAMP_FORMAT)  # the same timestamps in the store


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet="ab./-_*'()!~ ", max_size=12))
def test_the_handler_and_the_agent_agree_on_every_prefix(prefix):
    assert handler._safe_prefix(prefix) == contract.is_safe_prefix(prefix)


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

    assert not handler._safe_prefix(prefix)
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
