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

from sdctl.analysis.sim import layout as ix  # where each parameter and counter lives
from sdctl.analysis.sim import pods as pd
from sdctl.analysis.sim.controllers import (
    hpa_next,
    hpa_recommendation,
    hpa_windows,
    keda_next,
    window_periods,
)


@njit(cache=True)
def run(arrivals, service, prm, floor):
    """Simulate. ``floor``: the warm replicas scheduled for each minute from the start (a cron
    trigger's; the last value holds after the end). Returns (wait, e2e, counters, timeline);
    wait/e2e are NaN for tasks that expired or were never served, timeline rows are (t, queued,
    busy, replicas, ready, nodes)."""
    np.random.seed(int(prm[ix.P_SEED]))
    n = arrivals.shape[0]
    wait = np.full(n, np.nan, dtype=np.float32)
    e2e = np.full(n, np.nan, dtype=np.float32)
    counters = np.zeros(ix.N_COUNTERS)

    poll = max(1, int(prm[ix.P_POLL]))
    sync = max(1, int(prm[ix.P_SYNC]))
    deletion_cost = prm[ix.P_DELETION_COST] > 0
    tol, target, inflight_counts = prm[ix.P_TOL], prm[ix.P_TARGET], prm[ix.P_INFLIGHT] > 0
    activation, cooldown = prm[ix.P_ACTIVATION], prm[ix.P_COOLDOWN]
    min_r, max_r = int(prm[ix.P_MIN]), int(prm[ix.P_MAX])
    up_pods, up_pct = int(prm[ix.P_UP_PODS]), prm[ix.P_UP_PCT]
    down_n, up_n = window_periods(prm[ix.P_DOWN_WINDOW], sync), window_periods(prm[ix.P_UP_WINDOW], sync)
    launch, pull, load = prm[ix.P_LAUNCH], prm[ix.P_PULL], prm[ix.P_LOAD]
    per_node, node_cap = max(1, int(prm[ix.P_PODS_PER_NODE])), max(1, int(prm[ix.P_NODE_CAP]))
    consolidate, spot_fraction, spot_rate, notice = prm[ix.P_CONSOLIDATE], prm[ix.P_SPOT_FRACTION], prm[ix.P_SPOT_RATE], \
        prm[ix.P_NOTICE]
    batch, batch_speedup = max(1, int(prm[ix.P_BATCH])), prm[ix.P_BATCH_SPEEDUP]
    expire, drain = prm[ix.P_EXPIRE], prm[ix.P_DRAIN]  # drain: the last tick
    sample = max(1, int(prm[ix.P_SAMPLE]))

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
    recs = np.zeros(max(down_n, up_n), dtype=np.int64)
    nrecs = 0

    t_last = arrivals[n - 1] if n else 0.0
    horizon = max(int(np.ceil(t_last)) + 1, int(drain))
    timeline = np.zeros((horizon // sample + 2, 6))
    rows = 0

    replicas = 0
    if prm[ix.P_WARM] > 0 and min_r > 0:
        replicas = pd._start_warm(min_r, per_node, spot_fraction, spot_rate, pod_state, pod_node, node_state,
                                  node_spot, node_pods, node_notice)
    size = pd._rebuild(ht, hp, pod_state, pod_free)
    dirty = False
    nxt = 0  # next task to start (tasks start in arrival order)
    narr = 0  # tasks arrived so far
    last_active = 0.0

    for tick in range(1, horizon + 1):
        t = float(tick)
        if dirty:
            size = pd._rebuild(ht, hp, pod_state, pod_free)
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
                counters[ix.C_EXPIRED] += 1
                continue
            k = 1
            dur = service[nxt]
            while k < batch and nxt + k < n and arrivals[nxt + k] <= start:
                dur += service[nxt + k]
                k += 1
            if k > 1:
                dur = dur / (1.0 + (batch_speedup - 1.0) * (k - 1) / (batch - 1))
                counters[ix.C_BATCHES] += 1
            end = start + dur
            for j in range(nxt, nxt + k):
                wait[j] = start - arrivals[j]
                e2e[j] = end - arrivals[j]
            counters[ix.C_SERVED] += k
            counters[ix.C_BUSY_SECONDS] += dur
            nxt += k
            p = hp[0]
            pod_free[p] = end
            ht[0] = end
            pd._sift_down(ht, hp, size, 0)
        # expire what waited too long while no pod could take it
        while nxt < n and arrivals[nxt] < t - expire and (size == 0 or ht[0] >= t):
            nxt += 1
            counters[ix.C_EXPIRED] += 1
        while narr < n and arrivals[narr] < t:
            narr += 1
        queued = narr - nxt

        # 2. nodes: registration, spot notices, termination, consolidation
        for node in range(nmax):
            st = node_state[node]
            if st == pd.LAUNCHING and node_up[node] <= t:
                node_state[node] = pd.UP
            elif st == pd.UP and node_notice[node] <= t:
                node_state[node] = pd.ENDING
                node_end[node] = node_notice[node] + notice
                counters[ix.C_INTERRUPTIONS] += 1
                for p in range(pmax):
                    if pod_node[p] == node and pod_state[p] != pd.NONE:
                        if pod_state[p] == pd.READY:
                            pod_state[p] = pd.DRAINING
                            dirty = True
                        elif pod_state[p] != pd.DRAINING:
                            pod_state[p] = pd.NONE
                            pod_node[p] = -1
                            node_pods[node] -= 1
            if node_state[node] == pd.ENDING and node_end[node] <= t:
                for p in range(pmax):
                    if pod_node[p] == node and pod_state[p] != pd.NONE:
                        if pod_free[p] > t:
                            counters[ix.C_CUT] += 1
                        pod_state[p] = pd.NONE
                        pod_node[p] = -1
                node_pods[node] = 0
                node_state[node] = pd.FREE
                secs = t - node_start[node]
                counters[ix.C_SPOT_SECONDS if node_spot[node] else ix.C_OD_SECONDS] += secs
                node_notice[node] = np.inf
                node_end[node] = np.inf
            elif node_state[node] == pd.UP and node_pods[node] == 0 and t - node_empty[node] >= consolidate:
                node_state[node] = pd.FREE
                counters[ix.C_SPOT_SECONDS if node_spot[node] else ix.C_OD_SECONDS] += t - node_start[node]
                node_notice[node] = np.inf

        # 3. pods: start on registered nodes, become ready, finish draining
        busy = 0
        live = 0
        ready = 0
        for p in range(pmax):
            st = pod_state[p]
            if st == pd.PENDING and pod_node[p] >= 0 and node_state[pod_node[p]] == pd.UP:
                node = pod_node[p]
                pod_state[p] = pd.STARTING
                pod_ready[p] = max(t, node_image[node]) + load
            elif st == pd.DRAINING and pod_free[p] <= t:
                pd._release(p, t, pod_state, pod_node, node_pods, node_empty)
            if pod_state[p] == pd.STARTING and pod_ready[p] <= t:
                pod_state[p] = pd.READY
                pod_free[p] = t
                dirty = True
            st = pod_state[p]
            if st == pd.READY or st == pd.DRAINING:
                if pod_free[p] > t:
                    busy += 1
            if st == pd.PENDING or st == pd.STARTING or st == pd.READY:
                live += 1
            if st == pd.READY:
                ready += 1

        # 4. KEDA every polling interval, the HPA every sync period
        metric = float(queued + (busy if inflight_counts else 0))
        # a warm window's cron trigger enters the formula as max(lanes, replicas * target)
        metric = max(metric, floor[min(tick // 60, floor.shape[0] - 1)] * target)
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
            recs[nrecs % recs.shape[0]] = rec
            nrecs += 1
            wmax, wmin = hpa_windows(recs, nrecs, down_n, up_n)
            replicas = hpa_next(replicas, rec, wmax, min_r, max_r, up_pods, up_pct, wmin)

        # 5. the Deployment: create or delete pods towards `replicas`
        while live > replicas:
            victim = -1
            rank = -1
            for p in range(pmax):  # unscheduled, starting, idle ready (by deletion cost), the newest ready
                st = pod_state[p]
                r = -1
                if st == pd.PENDING:
                    r = 4
                elif st == pd.STARTING:
                    r = 3
                elif st == pd.READY:
                    r = 2 if deletion_cost and pod_free[p] <= t else 1
                if r > rank or (r == rank and r >= 0 and pod_ready[p] > pod_ready[victim]):
                    rank = r
                    victim = p
            if victim < 0 or rank < 0:
                break
            if pod_state[victim] == pd.READY:
                pod_state[victim] = pd.DRAINING
                dirty = True
            else:
                pd._release(victim, t, pod_state, pod_node, node_pods, node_empty)
            live -= 1
        while live < replicas:
            slot = pd._first(pod_state, pd.NONE)
            if slot < 0:
                break
            pod_state[slot] = pd.PENDING
            pod_node[slot] = -1
            live += 1
        # 6. Karpenter: bind pending pods to nodes with room, launch nodes for the rest
        for p in range(pmax):
            if pod_state[p] != pd.PENDING or pod_node[p] >= 0:
                continue
            chosen = -1
            for node in range(nmax):
                st = node_state[node]
                if (st == pd.UP or st == pd.LAUNCHING) and node_pods[node] < per_node:
                    chosen = node
                    break
            if chosen < 0:
                if pd._alive(node_state) >= node_cap:
                    continue
                chosen = pd._first(node_state, pd.FREE)
                if chosen < 0:
                    continue
                node_state[chosen] = pd.LAUNCHING
                node_start[chosen] = t
                node_up[chosen] = t + launch
                node_image[chosen] = t + launch + pull
                pd._draw_spot(chosen, t, spot_fraction, spot_rate, node_spot, node_notice)
                counters[ix.C_LAUNCHES] += 1
            pod_node[p] = chosen
            node_pods[chosen] += 1

        if tick % sample == 0 and rows < timeline.shape[0]:
            timeline[rows, 0] = t
            timeline[rows, 1] = queued
            timeline[rows, 2] = busy
            timeline[rows, 3] = replicas
            timeline[rows, 4] = ready
            timeline[rows, 5] = pd._alive(node_state)
            rows += 1
        if t > t_last and nxt >= n and busy == 0 and live == 0 and pd._alive(node_state) == 0:
            break

    t_end = float(tick)
    for node in range(nmax):  # bill what is still up
        if node_state[node] != pd.FREE:
            counters[ix.C_SPOT_SECONDS if node_spot[node] else ix.C_OD_SECONDS] += t_end - node_start[node]
    counters[ix.C_UNSERVED] = n - nxt
    counters[ix.C_END] = t_end
    return wait, e2e, counters, timeline[:rows]
