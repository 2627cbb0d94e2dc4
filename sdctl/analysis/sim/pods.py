"""The simulation's pods and nodes: their states, and the compiled helpers the loop
(sdctl/analysis/sim/engine.py) keeps them with: a heap of the ready pods by the time each is
free, a pod's release from its node, the count of billed nodes."""

from __future__ import annotations

import numpy as np
from numba import njit

# pod states
NONE, PENDING, STARTING, READY, DRAINING = 0, 1, 2, 3, 4
# node states
FREE, LAUNCHING, UP, ENDING = 0, 1, 2, 3


@njit(cache=True)
def _sift_down(ht, hp, size, i):
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        small = left
        if left + 1 < size and ht[left + 1] < ht[left]:
            small = left + 1
        if ht[small] < ht[i]:
            ht[i], ht[small] = ht[small], ht[i]
            hp[i], hp[small] = hp[small], hp[i]
            i = small
        else:
            return


@njit(cache=True)
def _rebuild(ht, hp, pod_state, pod_free):
    size = 0
    for p in range(pod_state.shape[0]):
        if pod_state[p] == READY:
            ht[size] = pod_free[p]
            hp[size] = p
            size += 1
    for i in range(size // 2 - 1, -1, -1):
        _sift_down(ht, hp, size, i)
    return size


@njit(cache=True)
def _release(p, t, pod_state, pod_node, node_pods, node_empty):
    """A pod is gone: free its slot on its node, and note when the node became empty."""
    node = pod_node[p]
    pod_state[p] = NONE
    pod_node[p] = -1
    if node >= 0:
        node_pods[node] -= 1
        if node_pods[node] == 0:
            node_empty[node] = t


@njit(cache=True)
def _alive(node_state):
    """Nodes launching, up or ending (billed)."""
    n = 0
    for st in node_state:
        if st != FREE:
            n += 1
    return n


@njit(cache=True)
def _start_warm(min_r, per_node, spot_fraction, spot_rate, pod_state, pod_node, node_state, node_spot, node_pods,
                node_notice):
    """``min_r`` pods ready at the start, on nodes already up; returns the replicas."""
    for p in range(min_r):
        node = p // per_node
        if node_state[node] == FREE:
            node_state[node] = UP
            _draw_spot(node, 0.0, spot_fraction, spot_rate, node_spot, node_notice)
        node_pods[node] += 1
        pod_state[p] = READY
        pod_node[p] = node
    return min_r


@njit(cache=True)
def _draw_spot(node, t, spot_fraction, spot_rate, node_spot, node_notice):
    """A node launched at ``t``: spot or on-demand, and when a spot one is interrupted."""
    node_spot[node] = 1 if np.random.random() < spot_fraction else 0
    node_notice[node] = np.inf
    if node_spot[node] == 1 and spot_rate > 0:
        node_notice[node] = t + np.random.exponential(3600.0 / spot_rate)


@njit(cache=True)
def _first(states, value):
    """The first index holding ``value`` (a free pod slot, a free node), or -1."""
    for i in range(states.shape[0]):
        if states[i] == value:
            return i
    return -1
