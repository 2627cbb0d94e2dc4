"""`sdctl cost`: the guidance's table reproduced from its own assumptions, and the config's estimate."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sdctl.analysis import cost
from sdctl.cli.main import app
from tests.conftest import EXAMPLE


def run(*args, code=0):
    r = CliRunner().invoke(app, ["-c", str(EXAMPLE), "-o", "json", "cost", *args])
    assert r.exit_code == code, r.output
    return json.loads(r.stdout) if code == 0 else r


def test_the_guidance_table_is_reproduced_within_two_percent():
    g = cost.compare_guidance()
    assert g["theirs"]["lines_sum"] == pytest.approx(436.42)
    assert abs(g["difference_pct"]) < 2 and abs(g["difference_vs_stated_pct"]) < 2
    ours = {x["dimension"].split(",")[0]: x["total"] for x in g["reproduced"]["lines"]}
    assert ours["g5.2xlarge spot"] == pytest.approx(207.00, abs=0.01)   # 416.67 GPU hours at 0.4968
    assert ours["m5.large system nodes"] == pytest.approx(138.24)       # 2 x 720 h at 0.096
    assert ours["cluster hours"] == pytest.approx(72.00)
    assert ours["PUT requests"] == pytest.approx(10.00) and ours["storage"] == pytest.approx(3.29)


def test_what_the_guidance_leaves_out_is_priced():
    left = {x["dimension"]: x["total"] for x in cost.compare_guidance()["left_out"]["lines"]}
    assert left["NAT gateway hours"] == pytest.approx(32.40)  # 720 h at 0.045
    assert left["task store writes, millions"] > 0 and "NAT data processed, GB" in left


def test_the_example_config_estimate_follows_the_config():
    """The lean profile: the cheapest listed GPU type (what Karpenter launches), one t4g.medium
    system node, a NAT instance and its public address, no NAT gateway."""
    report = run("--images", "500000")
    est = report["estimate"]
    gpu = est["lines"][0]
    assert gpu["dimension"].startswith("g6.xlarge spot") and gpu["quantity"] == pytest.approx(208.3333, abs=0.001)
    assert "estimate" in gpu["note"]
    dims = {x["dimension"]: x for x in est["lines"]}
    assert {"t4g.nano NAT instance, hours", "task store writes, millions", "t4g.medium system nodes, hours",
            "public IPv4 address hours"} <= set(dims)
    assert "NAT gateway hours" not in dims
    assert dims["t4g.medium system nodes, hours"]["quantity"] == 730
    assert est["per_image"] == pytest.approx(est["total"] / 500000, rel=1e-3)
    assert est["prices_as_of"]


def test_on_demand_and_a_given_price_change_only_the_gpu_line():
    spot = run("--instance", "g6.xlarge")["estimate"]
    od = run("--instance", "g6.xlarge", "--on-demand")["estimate"]
    quote = run("--instance", "g6.xlarge", "--price-per-hour", "0.3")["estimate"]
    assert od["lines"][0]["unit"] == 0.8048 and quote["lines"][0]["unit"] == 0.3
    assert od["total"] - spot["total"] == pytest.approx(od["lines"][0]["total"] - spot["lines"][0]["total"], abs=0.02)


def test_an_unknown_instance_type_is_named_with_a_hint():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "sdctl", "-c", str(EXAMPLE), "cost", "--instance", "p9.mega"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "no price for instance type p9.mega" in r.stderr and "--price-per-hour" in r.stderr


def test_compare_prints_each_profile_for_this_file_and_lean_costs_less_when_idle():
    report = run("--compare")
    lean, ha = report["profiles"]["lean"], report["profiles"]["ha"]
    assert report["estimate"]["total"] == lean["total"]  # the file says nothing: lean is the default
    dims = {p: {x["dimension"]: x["total"] for x in report["profiles"][p]["lines"]} for p in ("lean", "ha")}
    assert dims["ha"]["m7g.large system nodes, hours"] == pytest.approx(2 * 730 * 0.0816, abs=0.01)
    assert dims["ha"]["NAT gateway hours"] == pytest.approx(730 * 0.045, abs=0.01)
    assert dims["lean"]["t4g.nano NAT instance, hours"] == pytest.approx(730 * 0.0042, abs=0.01)
    assert dims["lean"]["public IPv4 address hours"] == dims["ha"]["public IPv4 address hours"] == 3.65
    assert ha["fixed"] - lean["fixed"] > 120
    # the GPU and per-request lines are the same under both
    assert dims["lean"]["g6.xlarge spot, GPU hours"] == dims["ha"]["g6.xlarge spot, GPU hours"]


def test_a_file_that_pins_a_value_keeps_it_under_either_profile(tmp_path):
    from sdctl.config import parse

    cfg = parse("profile: ha\nnetwork: {nat: instance}\nruntimes: [{name: a, type: sdwebui}]\n")
    assert cfg.network.nat == "instance" and cfg.cluster.system_nodes.count == 2
    lean = cfg.with_profile("lean")
    assert lean.network.nat == "instance" and lean.cluster.system_nodes.count == 1
    assert lean.cluster.system_nodes.instance_types == ["t4g.medium"]
    assert cfg.with_profile("ha").cluster.system_nodes.instance_types == ["m7g.large"]


def test_price_performance_names_the_break_even_render_time():
    rows = {r["instance"]: r for r in run("--compare")["price_performance"]}
    cheapest = min(rows.values(), key=lambda r: r["usd_per_hour"])
    assert cheapest["break_even_seconds_per_image"] == 1.5
    g5 = rows["g5.xlarge"]
    # g5.xlarge costs the same per image as g6.xlarge if it renders in 1.5 * 0.33 / 0.4125 s
    assert g5["break_even_seconds_per_image"] == pytest.approx(1.5 * cheapest["usd_per_hour"] / g5["usd_per_hour"],
                                                              abs=0.001)
