"""The config model: defaults, and a precise, complete report of every mistake."""

from __future__ import annotations

import pytest

from sdctl.config import load, parse
from sdctl.errors import ConfigError
from tests.conftest import EXAMPLE, ROOT

BASE = "runtimes:\n  - name: sdruntime\n    type: sdwebui\n"


def problems(text: str) -> list[dict]:
    with pytest.raises(ConfigError) as e:
        parse(text, source="sdctl.yaml")
    assert e.value.exit_code == 2
    return e.value.problems


def test_example_loads_with_one_runtime_named_like_the_guidance():
    cfg = load(EXAMPLE)
    assert [r.name for r in cfg.runtimes] == ["sdruntime"]
    rt = cfg.runtimes[0]
    assert rt.scaling.scale_on_in_flight is True
    assert rt.nodes.capacity_types == ["spot", "on-demand"]
    assert cfg.api.throttle.rate_limit == 30 and cfg.api.throttle.burst_limit == 50


def test_packaged_example_is_the_documented_one():
    from sdctl.config.loader import example_text

    assert example_text() == (ROOT / "sdctl.example.yaml").read_text()


def test_minimal_config_gets_defaults():
    cfg = parse(BASE)
    assert cfg.stack_name == "sdctl" and cfg.region == "us-west-2"
    assert cfg.output.retention_days == 30
    assert cfg.runtimes[0].max_task_seconds == 600


def test_unknown_key_is_reported_with_path_and_line():
    [p] = problems(BASE + "    maxReplica: 3\n")
    assert p["path"] == "runtimes[0].maxReplica"
    assert p["line"] == 4
    assert "unknown key" in p["message"]


def test_every_problem_is_reported_at_once():
    text = (
        "stackName: Bad_Name\n"            # 1
        "region: mars\n"                   # 2
        "runtimes:\n"                      # 3
        "  - name: a\n"                    # 4
        "    type: sdwebui\n"              # 5
        "    scaling:\n"                   # 6
        "      minReplicas: 5\n"           # 7
        "      maxReplicas: 2\n"           # 8
        "  - name: b\n"                    # 9
        "    type: torch\n"                # 10
        "    maxTaskSeconds: 0\n"          # 11
    )
    found = {p["path"]: p for p in problems(text)}
    assert found["stackName"]["line"] == 1 and "lowercase" in found["stackName"]["message"]
    assert found["region"]["line"] == 2
    assert found["runtimes[0].scaling"]["line"] == 6
    assert "minReplicas (5) must not exceed maxReplicas (2)" in found["runtimes[0].scaling"]["message"]
    assert found["runtimes[1].type"]["line"] == 10
    assert found["runtimes[1].maxTaskSeconds"]["line"] == 11


def test_wrong_types_and_missing_required_keys():
    found = {p["path"]: p for p in problems("runtimes:\n  - type: sdwebui\n    dynamicModel: maybe\n")}
    assert found["runtimes[0].name"]["message"] == "required key is missing"
    assert found["runtimes[0].name"]["line"] == 2
    assert "valid boolean" in found["runtimes[0].dynamicModel"]["message"]


def test_batching_tasks_is_refused_for_a_runtime_that_cannot():
    [found] = problems("runtimes:\n  - name: a\n    type: sdwebui\n    agent: {batchTasks: 4}\n")
    assert found["path"] == "runtimes[0]" and "several tasks in one call (diffusers)" in found["message"]
    assert parse("runtimes:\n  - name: a\n    type: diffusers\n    agent: {batchTasks: 4}\n").runtimes[0].agent.batch_tasks == 4


def test_missing_runtimes_and_duplicate_names():
    assert problems("stackName: x\n")[0]["path"] == "runtimes"
    found = problems(BASE + "  - name: sdruntime\n    type: comfyui\n")
    assert "repeated: sdruntime" in found[0]["message"]


def test_duplicate_yaml_key_would_lose_a_value():
    found = problems(BASE + "api:\n  stageName: a\n  stageName: b\n")
    assert found[0]["path"] == "api.stageName" and found[0]["line"] == 6
    assert "first set on line 5" in found[0]["message"]


def test_yaml_syntax_error_names_the_line():
    [p] = problems("runtimes:\n  - name: [unclosed\n")
    assert p["line"] is not None and "invalid YAML" in p["message"]


def test_empty_file_and_wrong_top_level():
    assert "empty" in problems("")[0]["message"]
    assert "mapping" in problems("- a\n- b\n")[0]["message"]


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path / "nope.yaml")
    assert "sdctl init" in e.value.hint


def test_formatted_problems_read_file_line_path_message():
    with pytest.raises(ConfigError) as e:
        parse(BASE + "    nodes:\n      capacityTypes: [spot, spot, reserved]\n", source="my.yaml")
    lines = e.value.lines()
    assert any(line.startswith("my.yaml:5: runtimes[0].nodes.capacityTypes[2]:") for line in lines), lines


def test_compiling_is_refused_for_a_runtime_that_cannot():
    [found] = problems("runtimes:\n  - name: a\n    type: comfyui\n    compile: true\n")
    assert found["path"] == "runtimes[0]" and "compiles its model (diffusers)" in found["message"]
    assert parse("runtimes:\n  - name: a\n    type: diffusers\n    compile: true\n").runtimes[0].compile is True


def test_validate_refuses_a_system_node_ami_type_its_instance_types_cannot_run(tmp_path):
    """As a user runs it: `arm64: true` beside x86 types (or a mix) exits 2 naming the field;
    `arm64: false` alone is valid and synth gives x86 nodes; an x86 NAT type gets the x86
    image (EC2 refuses an image of another architecture, tests/test_emulator_rules.py)."""
    import json

    from tests.helpers import cli

    bad = tmp_path / "bad.yaml"
    bad.write_text("runtimes: [{name: sd, type: sdwebui}]\ncluster: {systemNodes: {arm64: true, "
                   "instanceTypes: [m5.large]}}\n")
    r = cli("validate", "-c", str(bad), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "cluster.systemNodes.arm64 is true" in r.stderr and "m5.large" in r.stderr
    bad.write_text("runtimes: [{name: sd, type: sdwebui}]\ncluster: {systemNodes: {instanceTypes: [m5.large, "
                   "t4g.medium]}}\n")
    r = cli("validate", "-c", str(bad), cwd=tmp_path, check=False)
    assert r.returncode == 2 and "share one architecture" in r.stderr
    good = tmp_path / "sdctl.yaml"
    good.write_text("runtimes: [{name: sd, type: sdwebui}]\ncluster: {systemNodes: {arm64: false}}\n"
                    "network: {natInstanceType: t3.nano}\n")
    cli("validate", cwd=tmp_path)
    cli("synth", "--out", "synth", cwd=tmp_path)
    net = json.loads(next((tmp_path / "synth").glob("*network.template.json")).read_text())["Resources"]["NatInstance"]
    assert net["Properties"]["InstanceType"] == "t3.nano"
    assert net["Properties"]["ImageId"].endswith("al2023-ami-kernel-default-x86_64}}")


def test_validate_refuses_a_kubernetes_version_the_pins_are_not_for(tmp_path):
    """sdctl's EKS add-on pins are for one Kubernetes version (sdctl/versions.py); another used
    to pass `validate` and stop `deploy` at the pin check. An existing cluster's version is its
    own, so the field is not checked there."""
    from sdctl import versions
    from tests.helpers import cli

    cfg = tmp_path / "sdctl.yaml"
    cfg.write_text('runtimes: [{name: sd, type: sdwebui}]\ncluster: {version: "1.34"}\n')
    r = cli("validate", cwd=tmp_path, check=False)
    assert r.returncode == 2 and f"creates Kubernetes {versions.KUBERNETES} clusters only" in r.stderr
    cfg.write_text('runtimes: [{name: sd, type: sdwebui}]\ncluster: {version: "1.34", existing: true, name: prod}\n')
    cli("validate", cwd=tmp_path)


def test_an_image_cache_snapshot_with_fast_pull_is_refused_naming_why(tmp_path):
    """Karpenter's Bottlerocket bootstrap binds the RAID0 instance store over containerd's
    directory when fastPull is on, and the SOCI snapshotter resets containerd's state: the two
    options defeated each other silently. validate now refuses the pair (exit 2)."""
    from tests.helpers import cli

    (tmp_path / "sdctl.yaml").write_text(
        "runtimes: [{name: sd, type: sdwebui, nodes: {imageCacheSnapshotId: snap-0123456789abcdef0}}]\n")
    r = cli("validate", cwd=tmp_path, check=False)
    assert r.returncode == 2 and "imageCacheSnapshotId needs fastPull: false" in r.stderr
    (tmp_path / "sdctl.yaml").write_text("runtimes: [{name: sd, type: sdwebui, nodes: {fastPull: false, "
                                         "imageCacheSnapshotId: snap-0123456789abcdef0}}]\n")
    cli("validate", cwd=tmp_path)


BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
runtimes: [{name: sd, type: sdwebui}]
"""


@pytest.mark.parametrize(("text", "words"), [
    (BOMB, "holds more than 100,000 values (counting each time an alias"),  # 9^9 values from 1 KB
    ("runtimes: [{name: sd, type: sdwebui}]\n#" + "x" * (2 * 1024 * 1024) + "\n", "a config is at most"),
    ("stackName: " + "Q" * 500_000 + "\nruntimes: [{name: sd, type: sdwebui}]\n", "(500,000 characters) is not valid"),
    ("runtimes: [" + "{}," * 20_000 + "]\n", "runtimes: 20,000 runtimes; at most 16"),
    ("runtimes:\n" + "  - {name: sd, type: sdwebui}\n" * 250_000, "a config is at most"),
])
def test_any_config_is_read_in_bounded_time_and_its_errors_quote_a_short_excerpt(tmp_path, text, words):
    """As the new user found them: a 1 KB alias bomb ran validate past 120 s and 5.5 GB; a long
    value came back whole in the error; 250,000 runtimes took 26 s before "at most 16". Each is
    now refused at once (the subprocess's own timeout is only a guard), exit 2."""
    from tests.helpers import cli

    (tmp_path / "sdctl.yaml").write_text(text)
    r = cli("validate", cwd=tmp_path, check=False)
    assert r.returncode == 2 and words in r.stderr, r.stderr[:500]
    assert len(r.stderr) < 2000 and "Traceback" not in r.stderr
