"""The simulation loop: tasks through one runtime's queue, pods and GPU nodes.

Time moves in 1 s ticks for the controllers (KEDA every ``polling`` ticks, the HPA every 15)
and for pods and nodes (launch, image pull, model load, drain, consolidation, spot notices).
Tasks do not wait for a tick: between two ticks the queue is served exactly, first come first
served, by the pods that are ready (a heap of the times each becomes free), so a task starts
the moment it arrives or a pod frees up. That is what makes a fixed-replica run an M/M/c queue
whose mean wait Erlang C gives.

Pure: arrays in, arrays out. Compiled with numba (``cache=True``: the first run in a fresh
environment compiles for a few seconds, later ones load the cache).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from sdctl.builders.sim.controllers import hpa_next, hpa_recommendation, keda_next
from sdctl.builders.sim.pods import (  # noqa: F401 - the states are the engine's too
    DRAINING,
    ENDING,
    FREE,
    LAUNCHING,
    NONE,
    PENDING,
    READY,
    STARTING,
    UP,
    _alive,
    _rebuild,
    _release,
    _sift_down,
)

# indices into the float parameter vector (see params.Engine.vector)
(P_POLL, P_SYNC, P_TOL, P_TARGET, P_INFLIGHT, P_ACTIVATION, P_COOLDOWN, P_MIN, P_MAX, P_UP_PODS, P_UP_PCT,
 P_DOWN_WINDOW, P_LAUNCH, P_PULL, P_LOAD, P_PODS_PER_NODE, P_NODE_CAP, P_CONSOLIDATE, P_SPOT_FRACTION,
 P_SPOT_RATE, P_NOTICE, P_BATCH, P_BATCH_SPEEDUP, P_EXPIRE, P_DRAIN, P_SAMPLE, P_SEED, P_WARM) = range(28)
N_PARAMS = 28

# indices into the counters result
(C_SERVED, C_EXPIRED, C_UNSERVED, C_CUT, C_LAUNCHES, C_INTERRUPTIONS, C_SPOT_SECONDS, C_OD_SECONDS,
 C_BUSY_SECONDS, C_END, C_BATCHES) = range(11)
N_COUNTERS = 11


@njit(cache=True)
def run(arrivals, service, prm):
    """Simulate. Returns (wait, e2e, counters, timeline); wait/e2e are NaN for tasks that
    expired or were never served, timeline rows are (t, queued, busy, replicas, ready, nodes)."""
    np.random.seed(int(prm[P_SEED]))
    n = arrivals.shape[0]
    wait = np.full(n, np.nan, dtype=np.float32)
    e2e = np.full(n, np.nan, dtype=np.float32)
    counters = np.zeros(N_COUNTERS)

    poll = max(1, int(prm[P_POLL]))
    sync = max(1, int(prm[P_SYNC]))
    tol, target, inflight_counts = prm[P_TOL], prm[P_TARGET], prm[P_INFLIGHT] > 0
    activation, cooldown = prm[P_ACTIVATION], prm[P_COOLDOWN]
    min_r, max_r = int(prm[P_MIN]), int(prm[P_MAX])
    up_pods, up_pct = int(prm[P_UP_PODS]), prm[P_UP_PCT]
    window = max(1, int(prm[P_DOWN_WINDOW]) // sync + 1)
    launch, pull, load = prm[P_LAUNCH], prm[P_PULL], prm[P_LOAD]
    per_node, node_cap = max(1, int(prm[P_PODS_PER_NODE])), max(1, int(prm[P_NODE_CAP]))
    consolidate, spot_fraction, spot_rate, notice = prm[P_CONSOLIDATE], prm[P_SPOT_FRACTION], prm[P_SPOT_RATE], \
        prm[P_NOTICE]
    batch, batch_speedup = max(1, int(prm[P_BATCH])), prm[P_BATCH_SPEEDUP]
    expire, drain = prm[P_EXPIRE], prm[P_DRAIN]  # drain: the last tick
    sample = max(1, int(prm[P_SAMPLE]))

    pmax = 2 * max_r + 2
    nmax = min(node_cap, pmax) + max_r + 2
    pod_state = np.zeros(pmax, dtype=np.int64)
    pod_node = np.full(pmax, -1, dtype=np.int64)
    pod_ready = np.zeros(pmax)
    pod_free = np.zeros(pmax)
    node_state = np.zeros(nmax, dtype=np.int64)
    node_up = np.zeros(nmax)  # when it registers (device plugin ready)
    node_image = np.zeros(nmax)  # when its image pull finishes
    node_start = np.zeros(nmax)  # billing start
    node_spot = np.zeros(nmax, dtype=np.int64)
    node_pods = np.zeros(nmax, dtype=np.int64)
    node_empty = np.zeros(nmax)
    node_notice = np.full(nmax, np.inf)
    node_end = np.full(nmax, np.inf)
    ht = np.zeros(pmax)
    hp = np.zeros(pmax, dtype=np.int64)
    recs = np.zeros(window, dtype=np.int64)
    nrecs = 0

    t_last = arrivals[n - 1] if n else 0.0
    horizon = max(int(np.ceil(t_last)) + 1, int(drain))
    timeline = np.zeros((horizon // sample + 2, 6))
    rows = 0

    replicas = 0
    if prm[P_WARM] > 0 and min_r > 0:
        replicas = min_r
        for p in range(min_r):
            node = p // per_node
            if node_state[node] == FREE:
                node_state[node] = UP
                node_spot[node] = 1 if np.random.random() < spot_fraction else 0
                if node_spot[node] == 1 and spot_rate > 0:
                    node_notice[node] = np.random.exponential(3600.0 / spot_rate)
            node_pods[node] += 1
            pod_state[p] = READY
            pod_node[p] = node
    size = _rebuild(ht, hp, pod_state, pod_free)
    dirty = False
    nxt = 0  # next task to start (tasks start in arrival order)
    narr = 0  # tasks arrived so far
    last_active = 0.0

    for tick in range(1, horizon + 1):
        t = float(tick)
        if dirty:
            size = _rebuild(ht, hp, pod_state, pod_free)
            dirty = False
        # 1. serve, exactly, every task that can start before this tick
        while nxt < n and arrivals[nxt] < t and size > 0:
            f = ht[0]
            a = arrivals[nxt]
            start = a if a > f else f
            if start >= t:
                break
            if start - a > expire:
                nxt += 1
                counters[C_EXPIRED] += 1
                continue
            k = 1
            dur = service[nxt]
            while k < batch and nxt + k < n and arrivals[nxt + k] <= start:
                dur += service[nxt + k]
                k += 1
            if k > 1:
                dur = dur / (1.0 + (batch_speedup - 1.0) * (k - 1) / (batch - 1))
                counters[C_BATCHES] += 1
            end = start + dur
            for j in range(nxt, nxt + k):
                wait[j] = start - arrivals[j]
                e2e[j] = end - arrivals[j]
            counters[C_SERVED] += k
            counters[C_BUSY_SECONDS] += dur
            nxt += k
            p = hp[0]
            pod_free[p] = end
            ht[0] = end
            _sift_down(ht, hp, size, 0)
        # expire what waited too long while no pod could take it
        while nxt < n and arrivals[nxt] < t - expire and (size == 0 or ht[0] >= t):
            nxt += 1
            counters[C_EXPIRED] += 1
        while narr < n and arrivals[narr] < t:
            narr += 1
        queued = narr - nxt

        # 2. nodes: registration, spot notices, termination, consolidation
        for node in range(nmax):
            st = node_state[node]
            if st == LAUNCHING and node_up[node] <= t:
                node_state[node] = UP
            elif st == UP and node_notice[node] <= t:
                node_state[node] = ENDING
                node_end[node] = node_notice[node] + notice
                counters[C_INTERRUPTIONS] += 1
                for p in range(pmax):
                    if pod_node[p] == node and pod_state[p] != NONE:
                        if pod_state[p] == READY:
                            pod_state[p] = DRAINING
                            dirty = True
                        elif pod_state[p] != DRAINING:
                            pod_state[p] = NONE
                            pod_node[p] = -1
                            node_pods[node] -= 1
            if node_state[node] == ENDING and node_end[node] <= t:
                for p in range(pmax):
                    if pod_node[p] == node and pod_state[p] != NONE:
                        if pod_free[p] > t:
                            counters[C_CUT] += 1
                        pod_state[p] = NONE
                        pod_node[p] = -1
                node_pods[node] = 0
                node_state[node] = FREE
                secs = t - node_start[node]
                counters[C_SPOT_SECONDS if node_spot[node] else C_OD_SECONDS] += secs
                node_notice[node] = np.inf
                node_end[node] = np.inf
            elif node_state[node] == UP and node_pods[node] == 0 and t - node_empty[node] >= consolidate:
                node_state[node] = FREE
                counters[C_SPOT_SECONDS if node_spot[node] else C_OD_SECONDS] += t - node_start[node]
                node_notice[node] = np.inf

        # 3. pods: start on registered nodes, become ready, finish draining
        busy = 0
        live = 0
        ready = 0
        for p in range(pmax):
            st = pod_state[p]
            if st == PENDING and pod_node[p] >= 0 and node_state[pod_node[p]] == UP:
                node = pod_node[p]
                pod_state[p] = STARTING
                pod_ready[p] = max(t, node_image[node]) + load
            elif st == DRAINING and pod_free[p] <= t:
                _release(p, t, pod_state, pod_node, node_pods, node_empty)
            if pod_state[p] == STARTING and pod_ready[p] <= t:
                pod_state[p] = READY
                pod_free[p] = t
                dirty = True
            st = pod_state[p]
            if st == READY or st == DRAINING:
                if pod_free[p] > t:
                    busy += 1
            if st == PENDING or st == STARTING or st == READY:
                live += 1
            if st == READY:
                ready += 1

        # 4. KEDA every polling interval, the HPA every sync period
        metric = float(queued + (busy if inflight_counts else 0))
        active = metric > activation
        if active:
            last_active = t
        if tick % poll == 0:
            k_next = keda_next(replicas, active, t - last_active, min_r, cooldown)
            if k_next >= 0:
                replicas = k_next
                nrecs = 0
        if tick % sync == 0 and replicas > 0:
            rec = hpa_recommendation(replicas, metric, target, tol)
            recs[nrecs % window] = rec
            nrecs += 1
            wmax = rec
            for i in range(min(nrecs, window)):
                wmax = max(wmax, recs[i])
            replicas = hpa_next(replicas, rec, wmax, min_r, max_r, up_pods, up_pct)

        # 5. the Deployment: create or delete pods towards `replicas`
        while live > replicas:
            victim = -1
            rank = -1
            for p in range(pmax):  # unscheduled first, then starting, then the newest ready
                st = pod_state[p]
                r = -1
                if st == PENDING:
                    r = 3
                elif st == STARTING:
                    r = 2
                elif st == READY:
                    r = 1
                if r > rank or (r == rank and r >= 0 and pod_ready[p] > pod_ready[victim]):
                    rank = r
                    victim = p
            if victim < 0 or rank < 0:
                break
            if pod_state[victim] == READY:
                pod_state[victim] = DRAINING
                dirty = True
            else:
                _release(victim, t, pod_state, pod_node, node_pods, node_empty)
            live -= 1
        while live < replicas:
            slot = -1
            for p in range(pmax):
                if pod_state[p] == NONE:
                    slot = p
                    break
            if slot < 0:
                break
            pod_state[slot] = PENDING
            pod_node[slot] = -1
            live += 1
        # 6. Karpenter: bind pending pods to nodes with room, launch nodes for the rest
        for p in range(pmax):
            if pod_state[p] != PENDING or pod_node[p] >= 0:
                continue
            chosen = -1
            for node in range(nmax):
                st = node_state[node]
                if (st == UP or st == LAUNCHING) and node_pods[node] < per_node:
                    chosen = node
                    break
            if chosen < 0:
                if _alive(node_state) >= node_cap:
                    continue
                for node in range(nmax):
                    if node_state[node] == FREE:
                        chosen = node
                        break
                if chosen < 0:
                    continue
                node_state[chosen] = LAUNCHING
                node_start[chosen] = t
                node_up[chosen] = t + launch
                node_image[chosen] = t + launch + pull
                node_spot[chosen] = 1 if np.random.random() < spot_fraction else 0
                node_notice[chosen] = np.inf
                if node_spot[chosen] == 1 and spot_rate > 0:
                    node_notice[chosen] = t + np.random.exponential(3600.0 / spot_rate)
                counters[C_LAUNCHES] += 1
            pod_node[p] = chosen
            node_pods[chosen] += 1

        if tick % sample == 0 and rows < timeline.shape[0]:
            timeline[rows, 0] = t
            timeline[rows, 1] = queued
            timeline[rows, 2] = busy
            timeline[rows, 3] = replicas
            timeline[rows, 4] = ready
            timeline[rows, 5] = _alive(node_state)
            rows += 1
        if t > t_last and nxt >= n and busy == 0 and live == 0 and _alive(node_state) == 0:
            break

    t_end = float(tick)
    for node in range(nmax):  # bill what is still up
        if node_state[node] != FREE:
            counters[C_SPOT_SECONDS if node_spot[node] else C_OD_SECONDS] += t_end - node_start[node]
    counters[C_UNSERVED] = n - nxt
    counters[C_END] = t_end
    return wait, e2e, counters, timeline[:rows]
