"""Pure builders: config (and stack outputs) in, data out. No I/O, no SDKs: names and stack
outputs, CloudFormation, Helm release specs, the local plan, image specs, the cost model,
scale and doctor verdicts."""
