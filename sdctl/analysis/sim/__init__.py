"""`sdctl simulate`: one runtime's queue, KEDA, the HPA, pods, Karpenter and GPU nodes, as a
discrete-event simulation. Pure: a config, knobs and arrivals in; latencies, node-hours, cost
and a timeline out.

    knobs      what is modelled, each value's source (config, documented default, assumed)
    traffic    arrivals from a profile (--rate, --diurnal, --burst) or a trace file
    controllers  KEDA's and the HPA's replica formulas (numba)
    engine     the tick loop with exact first-come-first-served service between ticks (numba)
    run        one simulation, a sweep, the cheapest setting for a target p95; Erlang C
"""
