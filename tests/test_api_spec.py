"""docs/openapi.yaml against the real API: schemathesis generates requests from the document
(examples, coverage, fuzzing and stateful phases: submit, then read and cancel what was
submitted) and checks every answer against it, on the local stack's gateway and Lambda
handler. The stack is "held" (its agent has no runtime), so accepted tasks just queue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

SPEC = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"


def deployment_spec(tmp_path: Path) -> Path:
    """The document narrowed to this deployment (its one runtime and that runtime's task types),
    so valid requests can be required to succeed (the positive_data_acceptance check)."""
    spec = yaml.safe_load(SPEC.read_text())
    meta = spec["components"]["schemas"]["TaskRequest"]["properties"]["task"]["properties"]["metadata"]
    meta["properties"]["runtime"] = {"type": "string", "enum": ["sdruntime"]}
    meta["properties"]["tasktype"]["enum"] = ["text-to-image", "image-to-image", "extra-single-image"]
    # A deadline must be in the future, which no schema can say: narrowed to one that is.
    meta["properties"]["deadline"] = {"type": "string", "enum": ["2099-01-01T00:00:00Z"]}
    path = tmp_path / "openapi.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_schemathesis_finds_no_failure_against_the_local_gateway(held_stack, tmp_path):
    state = json.loads((held_stack / ".sdctl" / "state.json").read_text())
    r = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", str(deployment_spec(tmp_path)),
         "--url", state["gateway_url"], "--header", f"x-api-key: {state['api_key']}", "--checks", "all",
         # DELETE cancels: the record stays, readable as `cancelled` (the contract in
         # docs/wire-contract.md), where this check expects a 404 after any DELETE.
         "--exclude-checks", "use_after_free",
         "--max-examples", "25", "--seed", "7", "--generation-database", "none", "--no-color",
         "--report", "json", "--report-json-path", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-6000:]
    summary = r.stdout.split("SUMMARY")[-1]
    assert "Stateful" in summary and "failure" not in summary.split("Test cases:")[1], summary
    generated = int(summary.split("Test cases:")[1].split()[0])
    assert generated >= 150, summary
