"""Pure analysis of a config and of what a stack reports: the traffic simulator, the cost model,
and the verdicts `doctor` and `scale status` give. Config (and readings) in, numbers and
verdicts out; no SDK, no I/O."""
