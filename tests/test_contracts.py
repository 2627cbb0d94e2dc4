"""Contracts written once (sdctl/contracts/), and every side using that one copy: the Lambda
zip ships the contracts themselves (there is no handler's copy any more), and the agent, the
operate commands and the CLI import them."""

from __future__ import annotations

import pytest

from sdctl.contracts import tasks as contract


def test_the_lambda_zip_runs_on_the_contracts_it_carries_and_nothing_else_of_sdctl(tmp_path):
    """The zip as deploy uploads it: the two functions and sdctl/contracts, standard library
    only. Extracted and imported in a fresh interpreter that cannot see this checkout (isolated
    mode, the zip's folder first, as Lambda puts its task root first), both handlers load and
    their contracts are the zip's own files."""
    import io
    import json
    import subprocess
    import sys
    import zipfile

    from sdctl.execute.aws.artifacts import lambda_zip

    with zipfile.ZipFile(io.BytesIO(lambda_zip())) as z:
        names = sorted(z.namelist())
        z.extractall(tmp_path / "task")
    assert {"lambda_src/handler.py", "lambda_src/webhooks.py", "sdctl/__init__.py"} <= set(names)
    assert {n.split("/")[0] for n in names} == {"lambda_src", "sdctl"}
    assert {n.split("/")[1] for n in names if n.startswith("sdctl/") and n.count("/") == 2} == {"contracts"}
    # the functions' Handler settings, as the templates give them
    from sdctl.builders.cfn.stacks import stacks
    from sdctl.config import parse

    edge = next(x.template for x in stacks(parse("runtimes: [{name: r, type: comfyui}]")) if x.key == "edge")
    handlers = sorted(r["Properties"]["Handler"] for r in edge["Resources"].values()
                      if r["Type"] == "AWS::Lambda::Function")
    assert handlers == ["lambda_src.handler.handler", "lambda_src.webhooks.handler"]
    probe = ("import json, sys; import lambda_src.handler as handler, lambda_src.webhooks, sdctl.contracts.request as r; "
             "t = handler.validate({'task': {'metadata': {'id': 'a', 'runtime': 'r', 'tasktype': 'pipeline', "
             "'ttlSeconds': 5}, 'content': {}}}, {'r': 'comfyui'}); "
             "print(json.dumps([[r.__file__, handler.__file__], sorted(m for m in sys.modules if m.startswith('sdctl')), "
             "t['metadata']['deadline'][-1]]))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'task')!r}); "
                          + probe], capture_output=True, text=True, timeout=120, cwd=tmp_path / "task")
    assert out.returncode == 0, out.stderr
    where, loaded, zone = json.loads(out.stdout)
    assert zone == "Z"  # a validated deadline, in UTC, as the store keeps it
    assert all(w.startswith(str(tmp_path / "task")) for w in where), where
    assert all(m == "sdctl" or m.startswith("sdctl.contracts") for m in loaded), loaded


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
    from sdctl.contracts.tasks import is_safe_prefix

    assert not is_safe_prefix(prefix)
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



def test_the_handler_and_the_deliverer_read_the_environment_their_writers_write():
    """sdctl/contracts/edge_env.py: what CloudFormation and the local stack write, the handler
    and the deliverer read back, field for field (a name spelled two ways would read empty)."""
    from sdctl.contracts.edge_env import (
        DelivererEnv,
        HandlerEnv,
        deliverer_environment,
        handler_environment,
    )

    written = handler_environment(topic_arn="arn:t", bucket="b", runtimes={"sd": "sdwebui"}, default_prefix="out",
                                  tasks_table="tt", task_ttl_days=7, webhook_queue_url="https://q", allow_loopback=True)
    assert HandlerEnv.read(written) == HandlerEnv(topic_arn="arn:t", bucket="b", runtimes={"sd": "sdwebui"},
                                                  default_prefix="out", tasks_table="tt", task_ttl_days=7,
                                                  webhook_queue_url="https://q", allow_loopback=True)
    written = deliverer_environment(queue_url="q", dead_letter_queue_url="d", secret_arn="s", secret_cache_seconds=1)
    assert DelivererEnv.read({**written, "WEBHOOK_RETRY_DELAYS": "1,2"}) == DelivererEnv(
        queue_url="q", dead_letter_queue_url="d", secret_arn="s", secret_cache_seconds=1.0, retry_delays=(1, 2))


def test_the_task_record_refuses_an_attribute_it_does_not_declare_and_round_trips_what_it_does():
    """sdctl/contracts/record.py: a writer that misspells an attribute (`finshed_at`) is refused
    at once, not written beside the real one for readers to miss."""
    import pytest

    from sdctl.contracts import record

    with pytest.raises(ValueError, match="finshed_at"):
        record.update(set={"finshed_at": "x"})
    with pytest.raises(ValueError, match="#stauts"[1:]):
        record.update(set={"status": "running"}, condition="#stauts = :queued", values={"queued": "queued"})
    values = {"id": "t", "status": "completed", "attempts": 2, "runtime_seconds": 1.25, "image_url": ["s3://b/k"],
              "progress": {"step": 3, "steps": 20}, "cancel_requested": False, "expires_at": 99}
    item = record.item(**values)
    assert record.plain(item) == {k: v for k, v in values.items() if k != "expires_at"}
    assert record.record(item).runtime_seconds == 1.25 and record.record(item).expires_at == 99
