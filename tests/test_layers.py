"""The house's layers, read from every import (ast), lazy ones inside functions included.

    sdctl/contracts   what two parts agree on, written once (stdlib only; everyone may use it)
    sdctl/config      the sdctl.yaml model and loader
    sdctl/analysis    pure: the simulator, the cost model, doctor's and scale status' verdicts
    sdctl/builders    pure: config (and stack outputs) in, data out; no SDK, no I/O library
    sdctl/execute     executors: AWS, helm and Kubernetes, the local stack, deploy, publishing
    sdctl/operate     a running stack: target, API client, task store, queues, logs, gallery, doctor
    sdctl/console     the local web page (sdctl console) over operate
    sdctl/cli         Typer commands and presenters
    sdctl/agent, sdctl/runtime, lambda_src   deployed programs: contracts only

Data flows down: a layer imports only the layers before it (and errors, versions).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["config", "analysis", "builders", "execute", "operate", "console", "cli"]
SHARED = {"sdctl", "sdctl.errors", "sdctl.versions", "sdctl.__main__"}
SDKS = {"boto3", "botocore", "kubernetes", "pyhelm3", "httpx", "moto", "torch", "diffusers", "uvicorn",
        "starlette", "typer", "rich", "subprocess", "socket"}


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted([*(ROOT / "sdctl").rglob("*.py"), *(ROOT / "lambda_src").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every module `path` imports (sdctl's resolved to modules, others by top-level name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            for a in node.names:  # `from sdctl.x import y` where y is a module
                if f"{node.module}.{a.name}" in known:
                    found.add(f"{node.module}.{a.name}")
    return found


def layer(mod: str) -> str | None:
    parts = mod.split(".")
    if len(parts) > 1 and parts[1] == "contracts":
        return "contracts"
    if parts[0] == "lambda_src":
        return "deployed"
    if len(parts) > 1 and parts[1] in ("agent", "runtime"):
        return "deployed"
    if len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    return None


def test_each_layer_imports_only_the_layers_before_it():
    known = modules()
    wrong = []
    for mod, path in known.items():
        mine = layer(mod)
        for dep in imports(path, known):
            if not dep.startswith("sdctl") or dep in SHARED:
                continue
            theirs = layer(dep)
            if theirs == "contracts":  # every layer may use a contract, contracts one another
                continue
            if mine == "contracts":
                wrong.append(f"{mod} (a contract) imports {dep}: contracts import only contracts")
            elif mine == "deployed":
                # the agent, the runtime and lambda_src (the API handler and the webhook
                # deliverer) ship alone: contracts, and their own modules, nothing else of sdctl
                if theirs in ORDER:
                    wrong.append(f"{mod} (deployed) imports {dep}")
            elif mine in ORDER and theirs in ORDER and ORDER.index(theirs) > ORDER.index(mine):
                wrong.append(f"{mod} ({mine}) imports {dep} ({theirs})")
            elif mine in ORDER and theirs == "deployed" and mine != "cli":
                wrong.append(f"{mod} ({mine}) imports deployed code {dep}")
    assert wrong == []


def test_builders_config_and_contracts_touch_no_sdk():
    known = modules()
    wrong = [f"{mod} imports {dep}" for mod, path in known.items() if layer(mod) in ("config", "analysis", "builders", "contracts")
             for dep in imports(path, known) if dep.split(".")[0] in SDKS]
    assert wrong == []


def test_every_module_has_a_layer():
    loose = [m for m in modules() if layer(m) is None and m not in SHARED | {"sdctl.demo"}]
    assert loose == []


def test_there_is_no_import_cycle():
    known = modules()
    graph = {m: {d for d in imports(p, known) if d in known and d != m} for m, p in known.items()}
    # a package's __init__ re-exporting its modules is not a cycle of behaviour
    for m in graph:
        graph[m] = {d for d in graph[m] if not m.startswith(d + ".")}
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        stack.pop()

    for m in sorted(graph):
        visit(m)
    assert cycles == []


def test_no_test_module_imports_another():
    """Shared helpers live in tests/helpers.py and tests/conftest.py."""
    tests = ROOT / "tests"
    wrong = [f"{p.name} imports {dep}" for p in sorted(tests.glob("test_*.py"))
             for dep in imports(p, {}) if dep.startswith("tests.test_")]
    assert wrong == []


def test_rooms_of_a_size():
    """No module over 300 lines and no function over 80, so each can be read at once; the one
    exception is the simulator's compiled loop (numba compiles one function: its state lives in
    local arrays a split would pass through dozens of arguments)."""
    exempt = {("sdctl/analysis/sim/engine.py", "run")}
    too_long = []
    for path in modules().values():
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        if text.count("\n") > 300:
            too_long.append((where, "module", text.count("\n")))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 80 and (where, node.name) not in exempt:
                    too_long.append((where, node.name, length))
    assert too_long == []
