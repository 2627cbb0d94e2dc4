"""A warm floor on a schedule (``scaling.warm``), minute by minute, as KEDA's cron scaler keeps it.

KEDA's cron trigger is active from a ``start`` firing until the next ``end`` firing (its
``GetMetricsAndActivity``; start and end are 5-field "Linux" cron in the window's time zone).
The simulation's clock is that time zone's local time (the traffic's ``--burst 500@09:00`` and
``--diurnal`` peak are on the same clock), and its first second is a Monday at 00:00, so a
weekday window falls on the simulated weekdays. Daylight-saving shifts are not modelled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

#: The simulation starts on this Monday at 00:00 (any Monday would do: the calendar repeats by week
#: for weekday windows; day-of-month windows fall on January's dates).
START = datetime(2024, 1, 1)
LOOKBACK_DAYS = 8  # firings before the start: a window open at 00:00 Monday opened last week


def floor_per_minute(windows, minutes: int) -> np.ndarray:
    """The warm replicas for each minute from the start (``minutes + 1`` values): the most any
    open window asks for, 0 where none is open. ``windows``: (start cron, end cron, replicas)."""
    out = np.zeros(minutes + 1)
    for start, end, replicas in windows:
        out = np.maximum(out, open_minutes(start, end, minutes) * float(replicas))
    return out


def open_minutes(start: str, end: str, minutes: int) -> np.ndarray:
    """1 for each minute a window is open, else 0: open from a start firing until the next end."""
    firings = _firings(start, 1, minutes) + _firings(end, 0, minutes)
    firings.sort(key=lambda f: (f[0], f[1]))  # an end and a start in one minute: open after it
    at = np.array([f[0] for f in firings], dtype=np.int64)
    state = np.array([f[1] for f in firings], dtype=np.float64)
    last = np.searchsorted(at, np.arange(minutes + 1), side="right") - 1
    return np.where(last >= 0, state[np.maximum(last, 0)], 0.0)


def _firings(expr: str, value: int, minutes: int) -> list[tuple[int, int]]:
    from croniter import croniter

    begin = START - timedelta(days=LOOKBACK_DAYS)
    it = croniter(expr.replace("?", "*"), begin - timedelta(minutes=1))
    out = []
    while True:
        when = it.get_next(datetime)
        minute = int((when - START).total_seconds() // 60)
        if minute > minutes:
            return out
        out.append((minute, value))
