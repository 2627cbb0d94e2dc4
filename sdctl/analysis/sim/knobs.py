"""What the simulation models, and where each value comes from.

Every knob has a default taken from the config (``sdctl.yaml``) or from the controllers' and
AWS's documented behaviour; each can be overridden with ``--set name=value`` and all are
printed with the result, so an answer always says what it assumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from sdctl.analysis.sim import controllers as hpa
from sdctl.errors import UsageError


@dataclass(frozen=True)
class Knobs:
    # KEDA and the HPA (config: runtimes[].scaling)
    queue_length: float = 1  # AverageValue target per replica
    scale_on_in_flight: bool = True
    activation: float = 0  # activationTarget
    polling_seconds: int = 1
    cooldown_seconds: float = 60
    min_replicas: int = 0
    max_replicas: int = 20
    hpa_sync_seconds: int = hpa.SYNC_SECONDS
    hpa_tolerance: float = hpa.TOLERANCE
    hpa_up_pods: int = hpa.UP_PODS
    hpa_up_percent: float = hpa.UP_PERCENT
    hpa_down_window_seconds: float = hpa.DOWN_WINDOW_SECONDS
    hpa_up_window_seconds: float = 0  # behavior.scaleUp.stabilizationWindowSeconds
    #: scaling.warm: ((start cron, end cron, replicas), ...) on the simulation's clock
    warm_windows: tuple = ()
    # Karpenter and the node (config: runtimes[].nodes)
    node_launch_seconds: float = 75  # NodeClaim created -> node Ready with the GPU device plugin
    image_gb: float = 6.0  # the runtime image, compressed
    pull_mb_per_s: float = 150  # SOCI parallel pull onto NVMe (fastPull); ~60 without
    model_load_seconds: float = 15
    pods_per_node: int = 1
    gpu_limit: int = 100
    consolidate_after_seconds: float = 60
    spot_fraction: float = 1.0  # share of launches that get spot (the rest on-demand)
    spot_interruptions_per_node_hour: float = 0.0
    spot_notice_seconds: float = 120
    # the work
    seconds_per_image: float = 1.5
    service_cv: float = 0.25  # coefficient of variation of render time (0: every image the same)
    service_dist: str = "lognormal"  # lognormal | exponential | fixed
    agent_overhead_seconds: float = 0.02  # the runtime idles this long between two calls
    batch_tasks: int = 1
    batch_speedup: float = 1.0  # images/s of a full batch over batch 1
    deadline_seconds: float = math.inf  # tasks still queued after this expire
    warm: bool = True  # min_replicas are running when the simulation starts
    #: A scale-in stops idle pods before busy ones (the agent's pod-deletion-cost annotation);
    #: off, the ReplicaSet takes the newest ready pod, busy or not.
    deletion_cost: bool = True
    seed: int = 1

    @property
    def pull_seconds(self) -> float:
        return self.image_gb * 1024 / self.pull_mb_per_s

    def cold_start_seconds(self) -> float:
        return self.node_launch_seconds + self.pull_seconds + self.model_load_seconds


SOURCES = {
    "queue_length": "scaling.queueLength", "scale_on_in_flight": "scaling.scaleOnInFlight",
    "activation": "scaling.activationQueueLength (chart default 0)", "polling_seconds": "scaling.pollingSeconds",
    "cooldown_seconds": "scaling.cooldownSeconds", "min_replicas": "scaling.minReplicas",
    "max_replicas": "scaling.maxReplicas", "hpa_sync_seconds": "kube-controller-manager default",
    "hpa_tolerance": "kube-controller-manager default", "hpa_up_pods": "scaling.scaleUpPods",
    "hpa_up_percent": "autoscaling/v2 default behavior", "hpa_down_window_seconds": "scaling.scaleDownWindowSeconds",
    "hpa_up_window_seconds": "scaling.scaleUpWindowSeconds",
    "warm_windows": "scaling.warm (cron windows; the clock starts Monday 00:00; `--set warm_windows=none` drops them)",
    "node_launch_seconds": "Karpenter launch to Ready, GPU AMI (assumed; measure with `sdctl scale status`)",
    "image_gb": "runtime image size (assumed; `sdctl images` reports yours)",
    "pull_mb_per_s": "nodes.fastPull: SOCI parallel pull onto NVMe (assumed)",
    "model_load_seconds": "checkpoint load + warm-up (assumed; the runtime's /readyz reports it)",
    "pods_per_node": "one GPU per pod, one GPU per node", "gpu_limit": "nodes.gpuLimit",
    "consolidate_after_seconds": "nodes.consolidateAfter", "spot_fraction": "nodes.capacityTypes",
    "spot_interruptions_per_node_hour": "assumed 0 (pass a rate to see interruptions)",
    "spot_notice_seconds": "EC2 spot interruption notice",
    "seconds_per_image": "the cost model's default, or --measured from the task store",
    "service_cv": "assumed", "service_dist": "assumed",
    "agent_overhead_seconds": "bench/agent_throughput.py: the runtime's idle time between calls", "batch_tasks": "agent.batchTasks",
    "batch_speedup": "assumed 1 (no gain) until measured", "deadline_seconds": "none",
    "warm": "min replicas are up at the start", "seed": "random seed",
    "deletion_cost": "the agent's pod-deletion-cost annotation (sdctl/agent/podcost.py)",
}


def from_config(runtime, **overrides) -> Knobs:
    s, nodes = runtime.scaling, runtime.nodes
    k = Knobs(queue_length=s.queue_length, scale_on_in_flight=s.scale_on_in_flight,
              polling_seconds=s.polling_seconds, cooldown_seconds=s.cooldown_seconds,
              min_replicas=s.min_replicas, max_replicas=s.max_replicas, gpu_limit=nodes.gpu_limit,
              hpa_down_window_seconds=s.scale_down_window_seconds, hpa_up_window_seconds=s.scale_up_window_seconds,
              hpa_up_pods=s.scale_up_pods, warm_windows=tuple((w.start, w.end, w.replicas) for w in s.warm),
              consolidate_after_seconds=_duration(nodes.consolidate_after),
              pull_mb_per_s=150 if nodes.fast_pull else 60,
              spot_fraction=1.0 if nodes.capacity_types[0] == "spot" else 0.0,
              batch_tasks=runtime.agent.batch_tasks)
    return with_overrides(k, overrides)


def _duration(text: str) -> float:
    if text == "Never":
        return math.inf
    return parse_seconds(text)


def parse_seconds(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` (also `1h30m`) as seconds."""
    t = str(text).strip().lower()
    if t in ("inf", "never", "none"):
        return math.inf
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return float(t)
    except ValueError:
        pass
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", t)
    if not parts or "".join(a + b for a, b in parts) != t:
        raise UsageError(f"{text!r} is not a duration", hint="write seconds (90) or with a unit: 90s, 15m, 2h, 1d")
    return sum(float(a) * units[b] for a, b in parts)


def with_overrides(k: Knobs, overrides: dict) -> Knobs:
    names = {f.name: f for f in fields(Knobs)}
    out = {}
    for key, value in overrides.items():
        name = key.replace("-", "_")
        if name not in names:
            raise UsageError(f"no simulation knob named {key!r}", hint="knobs: " + ", ".join(names))
        # the declared type: a value taken from the config may be an int where the knob is a float
        kind = {"float": float, "int": int, "bool": bool, "str": str, "tuple": tuple}[names[name].type]
        try:
            if name == "warm_windows":
                if str(value).strip().lower() not in ("", "none", "off"):
                    raise ValueError(value)
                out[name] = ()
                continue
            if kind is bool:
                v = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif name.endswith("_seconds"):
                v = parse_seconds(value) if isinstance(value, str) else float(value)
            elif kind is str:
                v = str(value)
            else:
                v = kind(float(value)) if kind is int else float(value)
        except (TypeError, ValueError):
            what = "none (set windows in scaling.warm)" if name == "warm_windows" else f"a {kind.__name__}"
            raise UsageError(f"{key}={value!r} is not {what}") from None
        out[name] = v
    k = replace(k, **out)
    _check(k)
    return k


def _check(k: Knobs) -> None:
    if k.service_dist not in ("lognormal", "exponential", "fixed"):
        raise UsageError(f"service_dist {k.service_dist!r} is not lognormal, exponential or fixed")
    for name in ("queue_length", "seconds_per_image", "pull_mb_per_s", "batch_speedup"):
        if getattr(k, name) <= 0:
            raise UsageError(f"{name} must be > 0")
    if k.agent_overhead_seconds < 0:
        raise UsageError("agent_overhead_seconds must be >= 0")
    if k.max_replicas < max(1, k.min_replicas):
        raise UsageError("max_replicas must be >= min_replicas and >= 1")
    if not 0 <= k.spot_fraction <= 1:
        raise UsageError("spot_fraction must be between 0 and 1")


STREAMS = ("arrivals", "services", "engine")


def streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """One independent random stream per use, all derived from the one seed (numpy's
    ``SeedSequence.spawn``): arrivals, render times, and the engine's spot capacity and
    interruptions. Two uses that shared a seed drew the same numbers: exponential gaps and
    exponential render times came out proportional, long renders fell in long gaps, and an
    M/M/8 queue at 0.9 load waited 0.28 s where Erlang C says 1.32 s."""
    return dict(zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS)), strict=True))


def rng(seed: int, use: str) -> np.random.Generator:
    """The generator of one stream of :func:`streams`."""
    return np.random.default_rng(streams(seed)[use])


def engine_seed(seed: int) -> int:
    """The engine's stream as the 32-bit seed its compiled loop takes (``np.random.seed``)."""
    return int(streams(seed)["engine"].generate_state(1, dtype=np.uint32)[0])


def service_times(k: Knobs, n: int, rng: np.random.Generator) -> np.ndarray:
    mean = k.seconds_per_image
    if k.service_dist == "fixed" or k.service_cv == 0:
        return np.full(n, mean)
    if k.service_dist == "exponential":
        return rng.exponential(mean, n)
    sigma2 = math.log(1 + k.service_cv ** 2)
    return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), n)


def vector(k: Knobs, horizon: float, sample: int) -> np.ndarray:
    from sdctl.analysis.sim import layout as e

    v = np.zeros(e.N_PARAMS)
    v[e.P_POLL], v[e.P_SYNC], v[e.P_TOL] = k.polling_seconds, k.hpa_sync_seconds, k.hpa_tolerance
    v[e.P_TARGET], v[e.P_INFLIGHT], v[e.P_ACTIVATION] = k.queue_length, float(k.scale_on_in_flight), k.activation
    v[e.P_COOLDOWN], v[e.P_MIN], v[e.P_MAX] = k.cooldown_seconds, k.min_replicas, k.max_replicas
    v[e.P_UP_PODS], v[e.P_UP_PCT], v[e.P_DOWN_WINDOW] = k.hpa_up_pods, k.hpa_up_percent, k.hpa_down_window_seconds
    v[e.P_LAUNCH], v[e.P_PULL], v[e.P_LOAD] = k.node_launch_seconds, k.pull_seconds, k.model_load_seconds
    v[e.P_PODS_PER_NODE], v[e.P_NODE_CAP] = k.pods_per_node, k.gpu_limit
    v[e.P_CONSOLIDATE] = min(k.consolidate_after_seconds, 1e12)
    v[e.P_SPOT_FRACTION], v[e.P_SPOT_RATE] = k.spot_fraction, k.spot_interruptions_per_node_hour
    v[e.P_NOTICE], v[e.P_BATCH], v[e.P_BATCH_SPEEDUP] = k.spot_notice_seconds, k.batch_tasks, k.batch_speedup
    v[e.P_EXPIRE] = min(k.deadline_seconds, 1e12)
    v[e.P_DRAIN], v[e.P_SAMPLE], v[e.P_WARM] = horizon, sample, float(k.warm)
    v[e.P_SEED] = engine_seed(k.seed)
    v[e.P_DELETION_COST] = float(k.deletion_cost)
    v[e.P_UP_WINDOW] = k.hpa_up_window_seconds
    return v
