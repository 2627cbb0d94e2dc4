"""Contracts between parts, each written once and used by both sides: pure, standard library
only, so the deployed programs (agent, runtime, handler's tests) import them as freely as
the builders and the CLI do."""
