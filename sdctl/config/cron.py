"""The cron schedules and time zones of ``scaling.warm``, checked as KEDA's cron scaler reads them.

KEDA documents start/end as "Linux format cron (Minute Hour Dom Month Dow)" and parses them with
robfig/cron's standard five fields: numbers, ``*`` and ``?``, ranges ``a-b``, steps ``/n`` and
lists ``a,b``; month and weekday names (JAN, MON); weekdays 0-6 with Sunday 0. Anything beyond
(seconds, ``L``, ``W``, ``#``, a Sunday 7) is refused here, where KEDA would refuse it only
after the deploy (https://keda.sh/docs/latest/scalers/cron/).
"""

from __future__ import annotations

import re

FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
          ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
          ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")))
ITEM = re.compile(r"^(?P<range>\*|\?|(?P<a>\w+)(?:-(?P<b>\w+))?)(?:/(?P<step>\d+))?$")


def check_cron(text: str) -> str:
    """``text`` if it is a five-field schedule KEDA accepts; else ValueError naming the field."""
    parts = str(text).split()
    if len(parts) != 5:
        raise ValueError(f"{text!r} is not a cron schedule of five fields (minute hour day-of-month month "
                         "day-of-week), e.g. '45 8 * * 1-5'")
    for part, (name, lo, hi, names) in zip(parts, FIELDS, strict=True):
        for item in part.split(","):
            m = ITEM.match(item)
            if not m or (m.group("step") is not None and int(m.group("step")) < 1):
                raise ValueError(f"{text!r}: the {name} field {part!r} is not understood")
            if m.group("a") is None:
                continue
            a = _value(m.group("a"), name, lo, hi, names, text)
            b = _value(m.group("b"), name, lo, hi, names, text) if m.group("b") else a
            if a > b:
                raise ValueError(f"{text!r}: the {name} range {item!r} runs backwards")
    return " ".join(parts)


def _value(token: str, name: str, lo: int, hi: int, names: tuple, text: str) -> int:
    if token.upper() in names:
        return names.index(token.upper()) + lo
    if not token.isdigit() or not lo <= int(token) <= hi:
        raise ValueError(f"{text!r}: the {name} field takes {lo}-{hi}" + (f" or {names[0]}..{names[-1]}" if names
                                                                        else "") + f", not {token!r}")
    return int(token)


def check_zone(text: str) -> str:
    """``text`` if it names an IANA time zone (as KEDA's time.LoadLocation needs)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{text!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)") from None
    return text


def warm_now(windows, now) -> int:
    """The pods the open warm windows keep at ``now`` (an aware datetime): a window is open from
    its start's last firing until its end's next, each read in the window's own time zone."""
    if not windows:
        return 0
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from croniter import croniter

    floor = 0
    for w in windows:
        local = now.astimezone(ZoneInfo(w.timezone))
        started = croniter(w.start.replace("?", "*"), local).get_prev(datetime)
        ended = croniter(w.end.replace("?", "*"), local).get_prev(datetime)
        if started > ended:
            floor = max(floor, w.replicas)
    return floor
