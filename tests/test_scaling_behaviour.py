"""The HPA behaviour sdctl sets and the warm windows it schedules: the simulation's arithmetic
against Kubernetes' and KEDA's documented rules (worked by hand here), and the commands a user
runs with them (`sdctl simulate`, `sdctl validate`).

The stabilisation rule is kubernetes' `stabilizeRecommendationWithBehaviors`: up to the lowest
recommendation newer than ``now - scaleUp.stabilizationWindowSeconds``, down to the highest
newer than ``now - scaleDown.stabilizationWindowSeconds``, one recommendation per 15 s sync.
KEDA's cron trigger is active from a start firing until the next end firing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from sdctl.analysis.sim import controllers as c
from sdctl.analysis.sim import run as sim
from sdctl.analysis.sim import warm
from sdctl.analysis.sim.knobs import Knobs
from tests.conftest import EXAMPLE
from tests.helpers import cli


def test_a_window_holds_the_recommendations_newer_than_its_length():
    assert c.window_periods(0, 15) == 1  # only the current one: no stabilisation
    assert c.window_periods(15, 15) == 1  # the one 15 s ago is not newer than now - 15 s
    assert c.window_periods(20, 15) == 2
    assert c.window_periods(300, 15) == 20


def test_scale_up_goes_only_as_high_as_the_lowest_recommendation_in_its_window():
    recs = np.zeros(20, dtype=np.int64)
    for i, r in enumerate([1, 1, 4]):  # a spike of 4 after two quiet periods
        recs[i] = r
    wmax, wmin = c.hpa_windows(recs, 3, 20, 2)
    assert (wmax, wmin) == (4, 1)
    assert c.hpa_next(1, 4, wmax, 0, 20, 4, 100, wmin) == 1  # one period of 4 launches nothing
    recs[3] = 4
    wmax, wmin = c.hpa_windows(recs, 4, 20, 2)
    assert c.hpa_next(1, 4, wmax, 0, 20, 4, 100, wmin) == 4  # two periods of 4 do
    # no window: the recommendation itself, limited only by the scale-up policy
    assert c.hpa_next(1, 4, 4, 0, 20, 4, 100) == 4


def test_the_ring_of_recommendations_wraps():
    recs = np.array([9, 2, 3], dtype=np.int64)  # 9 was written last (the 4th of 4)
    assert c.hpa_windows(recs, 4, 3, 1) == (9, 9)
    assert c.hpa_windows(recs, 4, 2, 2) == (9, 3)


def test_a_weekday_window_opens_at_its_start_and_closes_at_its_end():
    floor = warm.floor_per_minute([("45 8 * * 1-5", "0 18 * * 1-5", 2)], 7 * 1440)
    monday, saturday = 0, 5 * 1440
    assert floor[monday + 8 * 60 + 44] == 0 and floor[monday + 8 * 60 + 45] == 2
    assert floor[monday + 17 * 60 + 59] == 2 and floor[monday + 18 * 60] == 0
    assert floor[saturday + 10 * 60] == 0
    assert floor.sum() == 2 * 5 * (9 * 60 + 15)


def test_a_window_across_midnight_is_open_at_the_start_and_the_largest_floor_wins():
    floor = warm.floor_per_minute([("0 22 * * *", "0 6 * * *", 1), ("30 5 * * *", "0 7 * * *", 3)], 1440)
    assert floor[0] == 1  # opened last night at 22:00
    assert floor[5 * 60 + 30] == 3 and floor[6 * 60 + 30] == 3 and floor[7 * 60] == 0
    assert floor[22 * 60] == 1


def test_a_warm_window_meets_a_known_burst_with_ready_pods():
    """100 tasks at 09:00 on the first day, scale to zero: without a window every one waits for
    a cold node; with 10 pods kept from 08:50 to 09:15 none waits longer than the renders ahead
    of it, and the window's hours are billed."""
    arrivals = np.full(100, 9 * 3600.0)
    k = Knobs(service_dist="fixed", seconds_per_image=2.0, max_replicas=20)
    cold = sim.simulate(k, arrivals, duration=86400)
    kept = sim.simulate(Knobs(service_dist="fixed", seconds_per_image=2.0, max_replicas=20,
                              warm_windows=(("50 8 * * *", "15 9 * * *", 10),)), arrivals, duration=86400)
    assert cold["wait_seconds"]["p50"] > k.cold_start_seconds()
    assert kept["wait_seconds"]["max"] < 25  # 100 tasks on 10 pods, 2 s each
    assert kept["gpu_hours"]["billed"] > cold["gpu_hours"]["billed"]


def _with(tmp_path, **scaling):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["runtimes"][0]["scaling"].update(scaling)
    path = tmp_path / "sdctl.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_simulate_reads_the_configs_windows_and_set_drops_them(tmp_path):
    config = _with(tmp_path, warm=[{"start": "50 8 * * *", "end": "15 9 * * *", "replicas": 8}],
                   scaleDownWindowSeconds=600)
    args = ["simulate", "-c", str(config), "--rate", "1M/month", "--burst", "500@09:00", "--duration", "2d",
            "-o", "json"]
    kept = json.loads(cli(*args, cwd=tmp_path).stdout)
    knobs = {row["knob"]: row["value"] for row in kept["knobs"]}
    assert knobs["warm_windows"] == [["50 8 * * *", "15 9 * * *", 8]]
    assert (knobs["hpa_down_window_seconds"], knobs["hpa_up_window_seconds"]) == (600, 20)
    dropped = json.loads(cli(*args, "--set", "warm_windows=none", cwd=tmp_path).stdout)
    assert {row["knob"]: row["value"] for row in dropped["knobs"]}["warm_windows"] == []
    assert kept["result"]["wait_seconds"]["p99"] < dropped["result"]["wait_seconds"]["p99"]
    assert kept["result"]["gpu_hours"]["billed"] > dropped["result"]["gpu_hours"]["billed"]
    bad = cli(*args, "--set", "warm_windows=9-5", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "warm_windows='9-5' is not none" in bad.stderr


def test_a_fractional_knob_is_not_rounded(tmp_path):
    r = cli("simulate", "-c", str(EXAMPLE), "--rate", "1/s", "--duration", "1h", "--set", "queue_length=1.5",
            "-o", "json", cwd=tmp_path)
    assert {row["knob"]: row["value"] for row in json.loads(r.stdout)["knobs"]}["queue_length"] == 1.5


@pytest.mark.parametrize(("window", "message"), [
    ({"start": "45 8 * *", "end": "0 18 * * *"}, "is not a cron schedule of five fields"),
    ({"start": "45 8 * * 7", "end": "0 18 * * *"}, "the day of week field takes 0-6 or SUN..SAT, not '7'"),
    ({"start": "45 25 * * *", "end": "0 18 * * *"}, "the hour field takes 0-23"),
    ({"start": "0 8 L * *", "end": "0 18 * * *"}, "the day of month field takes 1-31"),
    ({"start": "0 8 * * 1-5", "end": "0  8 * * 1-5"}, "start and end are the same schedule"),
    ({"start": "0 8 * * *", "end": "0 9 * * *", "timezone": "Mars/Olympus"}, "is not an IANA time zone"),
    ({"start": "0 8 * * *", "end": "0 9 * * *", "replicas": 50}, "warm[0].replicas (50) must not exceed maxReplicas"),
])
def test_validate_names_a_bad_warm_window(tmp_path, window, message):
    _refused(tmp_path, {"warm": [window]}, message)


@pytest.mark.parametrize("scaling", [{"scaleUpWindowSeconds": 3601}, {"scaleDownWindowSeconds": -1},
                                     {"scaleUpPods": 0}])
def test_validate_refuses_a_behaviour_the_api_server_would(tmp_path, scaling):
    """The HPA's limits (tests/test_aws_rules.py cites them): refused at validate, not at deploy."""
    [key] = scaling
    _refused(tmp_path, scaling, key)


def _refused(tmp_path, scaling: dict, message: str) -> None:
    r = cli("validate", "-c", str(_with(tmp_path, **scaling)), cwd=tmp_path, check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_validate_accepts_named_days_and_a_zone(tmp_path):
    window = {"start": "45 8 * * MON-FRI", "end": "0 18 * * mon-fri", "replicas": 2, "timezone": "Europe/Berlin"}
    r = cli("validate", "-c", str(_with(tmp_path, warm=[window])), cwd=tmp_path)
    assert r.returncode == 0


def test_scale_status_knows_which_windows_are_open_in_their_own_time_zone():
    """What `sdctl scale status` says an open window keeps: 08:45-18:00 on weekdays in Berlin is
    open at 08:00 UTC on a Monday in December (09:00 there) and closed at 08:00 UTC on Saturday."""
    from datetime import UTC, datetime

    from sdctl.config.cron import warm_now
    from sdctl.config.model import WarmWindow

    berlin = WarmWindow(start="45 8 * * 1-5", end="0 18 * * 1-5", replicas=2, timezone="Europe/Berlin")
    night = WarmWindow(start="0 22 * * *", end="0 6 * * *", replicas=1)
    monday = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert warm_now([berlin], monday) == 2
    assert warm_now([berlin], datetime(2026, 12, 7, 7, 30, tzinfo=UTC)) == 0  # 08:30 in Berlin
    assert warm_now([berlin], datetime(2026, 12, 12, 8, 0, tzinfo=UTC)) == 0  # Saturday
    assert warm_now([berlin, night], datetime(2026, 12, 12, 3, 0, tzinfo=UTC)) == 1  # across midnight (UTC)
