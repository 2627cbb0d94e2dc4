"""Where each value lives in the engine's arrays: the float parameter vector (written by
knobs.vector, read by the compiled loop) and the counters it returns."""

# indices into the float parameter vector (see knobs.vector)
(P_POLL, P_SYNC, P_TOL, P_TARGET, P_INFLIGHT, P_ACTIVATION, P_COOLDOWN, P_MIN, P_MAX, P_UP_PODS, P_UP_PCT,
 P_DOWN_WINDOW, P_LAUNCH, P_PULL, P_LOAD, P_PODS_PER_NODE, P_NODE_CAP, P_CONSOLIDATE, P_SPOT_FRACTION,
 P_SPOT_RATE, P_NOTICE, P_BATCH, P_BATCH_SPEEDUP, P_EXPIRE, P_DRAIN, P_SAMPLE, P_SEED, P_WARM,
 P_DELETION_COST, P_UP_WINDOW) = range(30)
N_PARAMS = 30

# indices into the counters result
(C_SERVED, C_EXPIRED, C_UNSERVED, C_CUT, C_LAUNCHES, C_INTERRUPTIONS, C_SPOT_SECONDS, C_OD_SECONDS,
 C_BUSY_SECONDS, C_END, C_BATCHES) = range(11)
N_COUNTERS = 11
