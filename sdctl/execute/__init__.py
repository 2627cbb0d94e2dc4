"""Executors: apply the builders' data to the world (AWS, helm and Kubernetes, the local
stack, deploy sequencing, image publishing). They report events; they never print."""
