"""KEDA's and the HPA's replica arithmetic, step by step as their documentation and sources
give it. Compiled with numba so the engine calls them once per tick; each is also callable
from plain Python (the unit tests do).

- HPA, external metric with an ``AverageValue`` target (what KEDA's ``aws-sqs-queue`` trigger
  creates): ``ratio = metric / (target * currentReplicas)``; inside the tolerance (0.1) the
  count stays, else ``ceil(metric / target)`` (kubernetes ``GetExternalPerPodMetricReplicas``).
- HPA behaviour defaults (autoscaling/v2): scale up at most ``max(current + 4, 2 * current)``
  per 15 s period, no up stabilisation; scale down to the highest recommendation of the last
  300 s (``stabilizationWindowSeconds``), then 100 % per 15 s. With a scale-up window, up goes
  only to the lowest recommendation within it (``stabilizeRecommendationWithBehaviors``:
  a spike shorter than the window launches nothing).
- KEDA: a ScaledObject is active while its metric is above ``activationTarget``; from zero an
  active one goes to ``max(minReplicaCount, 1)`` at once; with ``minReplicaCount: 0`` it goes
  back to zero once inactive for ``cooldownPeriod`` seconds. Between, the HPA decides, never
  below 1.
"""

from __future__ import annotations

import math

from numba import njit

SYNC_SECONDS = 15  # the HPA controller's --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWN_WINDOW_SECONDS = 300  # behavior.scaleDown.stabilizationWindowSeconds default
UP_PODS = 4  # behavior.scaleUp policies: 4 pods or 100 % per 15 s, whichever is more
UP_PERCENT = 100


@njit(cache=True)
def hpa_recommendation(current, metric, target, tolerance):
    """Replicas the HPA asks for before behaviour limits, for an AverageValue target."""
    if current <= 0:
        return 0
    ratio = metric / (target * current)
    if abs(1.0 - ratio) <= tolerance:
        return current
    return int(math.ceil(metric / target))


@njit(cache=True)
def hpa_scale_up_limit(current, up_pods, up_percent):
    """The most replicas one period allows: the larger of the Pods and Percent policies."""
    by_pods = current + up_pods
    by_percent = int(math.ceil(current * (1.0 + up_percent / 100.0)))
    return max(by_pods, by_percent)


@njit(cache=True)
def window_periods(window_seconds, sync):
    """How many of the HPA's recommendations a stabilisation window holds: those newer than
    ``now - window`` (``timestamp.After(cutoff)``), one per sync period, the current one always.
    A 300 s window at 15 s holds 20; a 15 s window only the current one (no stabilisation),
    a 20 s one the current and the one before."""
    return max(1, int(math.ceil(window_seconds / sync)))


@njit(cache=True)
def hpa_windows(recs, nrecs, down_n, up_n):
    """The largest recommendation of the last ``down_n`` and the smallest of the last ``up_n``
    periods, from the ring ``recs`` holding ``nrecs`` so far (the newest included)."""
    size = recs.shape[0]
    newest = (nrecs - 1) % size
    wmax, wmin = recs[newest], recs[newest]
    for i in range(1, min(nrecs, max(down_n, up_n))):
        r = recs[(newest - i) % size]
        if i < down_n and r > wmax:
            wmax = r
        if i < up_n and r < wmin:
            wmin = r
    return wmax, wmin


@njit(cache=True)
def hpa_next(current, recommendation, window_max, min_replicas, max_replicas, up_pods, up_percent,
             window_min=-1):
    """Replicas after stabilisation and rate limits.

    ``window_max`` is the largest recommendation within the scale-down window (this one
    included): scaling down never goes below it. ``window_min`` the smallest within the
    scale-up window (-1: no window): scaling up never goes above it. Scaling up is limited per
    period."""
    up_to = recommendation if window_min < 0 else min(recommendation, window_min)
    desired = current
    if up_to > current:
        desired = min(up_to, hpa_scale_up_limit(current, up_pods, up_percent))
    elif recommendation < current:
        desired = min(current, window_max)
    lo = max(1, min_replicas)
    if desired < lo:
        desired = lo
    if desired > max_replicas:
        desired = max_replicas
    return desired


@njit(cache=True)
def keda_next(current, active, idle_seconds, min_replicas, cooldown):
    """KEDA's own step around the HPA: 0 -> max(min, 1) on activation, -> 0 after the cooldown.
    Returns -1 when KEDA leaves the count to the HPA."""
    if current == 0:
        if active:
            return max(min_replicas, 1)
        return 0 if min_replicas == 0 else min_replicas
    if (not active) and min_replicas == 0 and idle_seconds >= cooldown:
        return 0
    return -1
