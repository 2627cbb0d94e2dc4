"""The CLI's contract with scripts: exit codes, JSON output, fast --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sdctl.cli.main import app
from tests.conftest import EXAMPLE, ROOT

runner = CliRunner()


def run(*args, **kw):
    from sdctl.cli.common import RUN, Output

    RUN["output"] = Output.text
    return runner.invoke(app, list(args), catch_exceptions=False, **kw)


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdctl", *args], capture_output=True, text=True, cwd=cwd)


def test_help_does_not_import_heavy_libraries():
    code = ("import sys; from sdctl.cli.main import app; "
            "heavy = [m for m in ('boto3', 'botocore', 'torch', 'diffusers', 'kubernetes', 'moto') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_version():
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("sdctl ")


def test_init_writes_the_example_and_never_overwrites(tmp_path):
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 0
    assert (tmp_path / "sdctl.yaml").read_text() == EXAMPLE.read_text()
    (tmp_path / "sdctl.yaml").write_text("mine")
    r = cli("init", cwd=tmp_path)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (tmp_path / "sdctl.yaml").read_text() == "mine"


def test_validate_ok_in_json(tmp_path):
    r = cli("validate", "-c", str(EXAMPLE), "--output", "json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["runtimes"] == [{"name": "sdruntime", "type": "sdwebui"}]


def test_validate_reports_every_problem_with_exit_2(tmp_path):
    bad = tmp_path / "sdctl.yaml"
    bad.write_text("runtimes:\n  - name: x\n    type: sdwebui\n    scalling: {}\n    maxTaskSeconds: -1\n")
    r = cli("validate", "-c", str(bad))
    assert r.returncode == 2
    assert f"{bad}:4: runtimes[0].scalling: unknown key" in r.stderr
    assert f"{bad}:5: runtimes[0].maxTaskSeconds:" in r.stderr
    r = cli("validate", "-c", str(bad), "-o", "json")
    assert r.returncode == 2
    problems = json.loads(r.stdout)["error"]["problems"]
    assert {p["path"] for p in problems} == {"runtimes[0].scalling", "runtimes[0].maxTaskSeconds"}


def test_config_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SDCTL_CONFIG", str(EXAMPLE))
    r = run("validate")
    assert r.exit_code == 0 and "sdruntime" in r.stdout


def test_operate_commands_without_a_local_stack_fail_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("SDCTL_STATE_DIR", str(tmp_path / ".sdctl"))
    r = cli("generate", "a fox", "--local", "-o", "json")
    assert r.returncode == 1
    err = json.loads(r.stdout)["error"]
    assert err["type"] == "LocalStackError" and "local up" in err["hint"]


def test_bad_sizes_are_usage_errors():
    r = cli("generate", "x", "--width", "100", "--local")
    assert r.returncode == 2 and "multiples of 8" in r.stderr
    r = cli("generate", "x", "--width", "10000", "--local")
    assert r.returncode == 2


def test_doctor_says_when_helm_is_missing_and_how_to_get_it(tmp_path, monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AWS_")}
    env.update(PATH="/usr/bin:/bin", SDCTL_HELM=str(tmp_path / "nohelm"), AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(tmp_path / "x"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "x"))
    (tmp_path / "sdctl.yaml").write_text(EXAMPLE.read_text())
    r = subprocess.run([sys.executable, "-m", "sdctl", "doctor", "-o", "json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["config"]["status"] == "ok"
    assert checks["aws credentials"]["status"] == "warn" and "AWS_PROFILE" in checks["aws credentials"]["fix"]
    # a hint that works for a wheel install too (no Makefile there)
    assert checks["helm"]["status"] == "fail" and "python -m sdctl.execute.helmbin install" in checks["helm"]["fix"]
    assert r.returncode == 1
    env["SDCTL_HELM"] = str(ROOT / ".tools" / "bin" / "helm")
    r = subprocess.run([sys.executable, "-m", "sdctl", "doctor", "-o", "json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["helm"]["status"] == "ok" and "v4." in checks["helm"]["detail"] and r.returncode == 0


def test_init_guided_asks_four_questions_on_a_terminal(tmp_path):
    """Answered through a real pseudo-terminal (util-linux `script`), as a user would."""
    import shutil

    from sdctl.config import parse

    if shutil.which("script") is None:
        pytest.fail("util-linux `script` is needed to give the prompt a terminal")
    answers = "eu-west-1\ndiffusers\ng6.xlarge, g6.2xlarge\nn\n"
    r = subprocess.run(["script", "-qec", f"{sys.executable} -m sdctl init --guided", "/dev/null"], cwd=tmp_path,
                       input=answers, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = parse((tmp_path / "sdctl.yaml").read_text())
    assert cfg.region == "eu-west-1"
    [rt] = cfg.runtimes
    assert rt.type == "diffusers" and rt.nodes.instance_types == ["g6.xlarge", "g6.2xlarge"]
    assert rt.nodes.capacity_types == ["on-demand"]
    refused = subprocess.run([sys.executable, "-m", "sdctl", "init", "--guided", str(tmp_path / "other.yaml")],
                             capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "needs a terminal" in refused.stderr


def test_no_color_prints_no_escape_codes(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sdctl", "--no-color", "cost", "-c", str(EXAMPLE)],
                       capture_output=True, text=True, env={**__import__("os").environ, "FORCE_COLOR": "1"})
    assert r.returncode == 0 and "\x1b[" not in r.stdout and "g6.xlarge" in r.stdout


def test_help_imports_no_heavy_library():
    """`sdctl --help` is typed often and by CI scripts: it must not pay for pydantic, the AWS
    SDK, the Kubernetes client, httpx, YAML or torch (bench/cli_start.py times it)."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "sdctl", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    heavy = {"pydantic", "boto3", "botocore", "kubernetes", "httpx", "yaml", "torch", "diffusers", "pyhelm3", "moto",
             "numba", "numpy", "matplotlib",
             "rich", "markdown_it"}
    assert not {m.split(".")[0] for m in imported} & heavy
    assert not {m for m in imported if m.endswith("_cmds")}, "a command module was imported for --help"


def test_every_command_is_listed_with_its_own_help():
    """`sdctl --help` lists commands from a table (sdctl/cli/catalog.py COMMANDS) so that it needs
    none of their modules; each line must say what the command's own help says, and each
    command must be reachable by its name."""
    from sdctl.cli.catalog import COMMANDS
    from sdctl.cli.lazy import load

    for name, entry in COMMANDS.items():
        command = load(name, entry.spec)
        assert command.name == name
        assert entry.help == command.get_short_help_str(limit=10_000), name


def test_an_unknown_command_is_a_usage_error_with_a_suggestion():
    r = cli("valdate")
    assert r.returncode == 2 and "validate" in r.stderr


def test_an_error_on_a_pipe_is_plain_text_and_loads_no_heavy_library(tmp_path):
    """What CI sees when a command fails: `error:` and `hint:` lines of plain text (no escape
    codes), written without importing rich or pydantic,
    so a failing `sdctl local status` costs no more than `sdctl --help`."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "sdctl", "local", "status"],
                       capture_output=True, text=True, cwd=tmp_path,
                       env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")})
    assert r.returncode == 1
    said = [line for line in r.stderr.splitlines() if not line.startswith("import time:")]
    assert said == ["error: the local stack is not running", "hint: start it with `sdctl local up --detach`"]
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert not imported & {"rich", "pydantic", "boto3", "botocore", "httpx", "yaml"}


def test_validate_builds_the_config_without_importlib_metadata(tmp_path):
    """pydantic's plugin loader imports importlib.metadata (email, zipfile, socket) even with
    plugins off; the CLI's stand-in for it (sdctl/cli/plugins_off.py) spares every command that
    reads the config that import, and the config is still checked in full."""
    (tmp_path / "sdctl.yaml").write_text(EXAMPLE.read_text())
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "sdctl", "validate"],
                       capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0 and "is valid" in r.stdout
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "importlib.metadata" not in imported and "pydantic" in imported
    (tmp_path / "sdctl.yaml").write_text(EXAMPLE.read_text().replace("region: us-west-2", "region: Oregon"))
    r = subprocess.run([sys.executable, "-m", "sdctl", "validate"], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "region" in r.stderr


@pytest.mark.parametrize("setting", ["__all__", "1", "true", "", "some-plugin"])
def test_the_plugin_loader_stand_in_answers_as_pydantic_does(setting):
    """Against the installed pydantic, in a fresh interpreter each: with the stand-in
    installed, get_plugins() gives what pydantic's own gives for the same setting (plugins off:
    none, without importing importlib.metadata; otherwise pydantic's own answer, its module
    then loaded in the stand-in's place), and any other name is pydantic's own."""
    script = (
        "import os, sys, json\n"
        "from sdctl.cli import plugins_off\n"
        "plugins_off.install()\n"
        "from pydantic.plugin._loader import get_plugins\n"
        "mine = list(get_plugins())\n"
        "light = 'importlib.metadata' not in sys.modules\n"
        "from pydantic.plugin import _loader\n"
        "group = _loader.PYDANTIC_ENTRY_POINT_GROUP\n"
        "real = sys.modules['pydantic.plugin._loader']\n"
        "print(json.dumps({'mine': [repr(p) for p in mine], 'light': light, 'group': group,\n"
        "                  'real': [repr(p) for p in real.get_plugins()], 'replaced': real is not plugins_off.STAND_IN}))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYDANTIC_DISABLE_PLUGINS=setting)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["mine"] == got["real"]
    assert got["group"] == "pydantic" and got["replaced"]  # another name asked for: the real module
    assert got["light"] == (setting in ("__all__", "1", "true"))


def test_init_guided_asks_for_the_image_of_a_type_that_runs_the_users_own(tmp_path):
    """A cog runtime runs the user's image (sdctl/contracts/runtimes/cog.py needs_image): the
    guided init asks for it, so the file it writes validates."""
    import shutil

    from sdctl.config import parse

    if shutil.which("script") is None:
        pytest.fail("util-linux `script` is needed to give the prompt a terminal")
    answers = "us-west-2\ncog\nr8.im/acme/fox-painter\ng6.xlarge\ny\n"
    r = subprocess.run(["script", "-qec", f"{sys.executable} -m sdctl init --guided", "/dev/null"], cwd=tmp_path,
                       input=answers, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    [rt] = parse((tmp_path / "sdctl.yaml").read_text()).runtimes
    assert (rt.type, rt.image) == ("cog", "r8.im/acme/fox-painter")
    assert subprocess.run([sys.executable, "-m", "sdctl", "validate"], cwd=tmp_path).returncode == 0
