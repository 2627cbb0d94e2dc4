"""Arrival times (seconds from the start), from a profile or a recorded trace. Pure: text and
numbers in, a sorted float array out (the CLI reads the trace file)."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from sdctl.errors import UsageError

DAY = 86400.0


@dataclass(frozen=True)
class Profile:
    rate: float = 0.0  # tasks per second, Poisson
    diurnal: float = 0.0  # 0..1: amplitude of a daily cycle peaking at 14:00, trough at 02:00
    bursts: tuple = field(default_factory=tuple)  # ((count, seconds into each day), ...)
    burst_rate: float = 50.0  # a burst arrives at this many tasks/s (the API's throttle)


def parse_rate(text: str) -> float:
    """`2/s`, `120/m`, `7200/h`, `1M/month` or a bare number (per second)."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([kKmM]?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour|d|day|month))?\s*", text)
    if not m:
        raise UsageError(f"rate {text!r} is not understood", hint="write 2/s, 120/m, 7200/h or 1M/month")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)]
    per = {None: 1, "s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
           "d": DAY, "day": DAY, "month": 730 * 3600}[m.group(3)]
    return value / per


def parse_burst(text: str) -> tuple[int, float]:
    """`500@09:00` -> (500, 32400.0): 500 tasks at 09:00 of each simulated day."""
    m = re.fullmatch(r"\s*(\d+)\s*@\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", text)
    if not m or int(m.group(2)) > 23 or int(m.group(3)) > 59:
        raise UsageError(f"burst {text!r} is not COUNT@HH:MM", hint="e.g. --burst 500@09:00")
    return int(m.group(1)), int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4) or 0)


def generate(p: Profile, duration: float, rng: np.random.Generator) -> np.ndarray:
    parts = []
    if p.rate > 0:
        peak = p.rate * (1 + p.diurnal)
        # exponential gaps, summed: already in order (no sort of millions of times)
        n = int(peak * duration + 6 * math.sqrt(peak * duration) + 10)
        t = np.cumsum(rng.exponential(1 / peak, n))
        t = t[t < duration]
        if p.diurnal:
            # thinning: keep each with probability rate(t) / peak; mean rate stays `rate`
            shape = 1 + p.diurnal * np.cos(2 * math.pi * (t / DAY - 14 / 24))
            t = t[rng.random(t.shape[0]) < shape / (1 + p.diurnal)]
        parts.append(t)
    for count, at in p.bursts:
        for day in range(int(math.ceil(duration / DAY))):
            start = day * DAY + at
            if start < duration:
                parts.append(start + np.arange(count) / p.burst_rate)
    if not parts:
        raise UsageError("no traffic: give --rate, --burst or --trace")
    out = np.sort(np.concatenate(parts))
    return out[out < duration] if p.rate > 0 else out


def parse_trace(text: str, name: str = "trace", runtime: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A CSV (header with `time`/`timestamp`/`arrival`/`t`, optional `seconds` and `runtime`)
    or JSONL (the same keys) of arrivals: numbers are seconds (or epoch seconds), strings ISO
    8601. Rows naming another runtime than ``runtime`` are left out. Returns (arrival seconds
    from the first, render seconds or None)."""
    rows = []
    stripped = text.lstrip()
    if stripped.startswith("{"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{name}:{i}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise UsageError(f"{name}:{i}: each line must be an object")
            rows.append((i, rec))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise UsageError(f"{name}: empty trace")
        rows = [(i, r) for i, r in enumerate(reader, 2)]
    times, secs = [], []
    for i, rec in rows:
        if runtime and rec.get("runtime") not in (None, "", runtime):
            continue
        key = next((k for k in ("time", "timestamp", "arrival", "t") if k in rec), None)
        if key is None:
            raise UsageError(f"{name}:{i}: no time field", hint="name it time, timestamp, arrival or t")
        times.append(_when(rec[key], f"{name}:{i}"))
        if rec.get("seconds") not in (None, ""):
            try:
                secs.append(float(rec["seconds"]))
            except (TypeError, ValueError):
                raise UsageError(f"{name}:{i}: seconds {rec['seconds']!r} is not a number") from None
    if not times:
        raise UsageError(f"{name}: no arrivals" + (f" for runtime {runtime}" if runtime else ""))
    if secs and len(secs) != len(times):
        raise UsageError(f"{name}: `seconds` is given on some rows but not all")
    order = np.argsort(np.asarray(times), kind="stable")
    t = np.asarray(times)[order]
    return t - t[0], (np.asarray(secs)[order] if secs else None)


def _when(value, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    s = str(value).strip()
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise UsageError(f"{where}: {value!r} is neither seconds nor an ISO 8601 time") from None
