"""Kubernetes executors: EKS credentials, Helm releases, reads of cluster objects."""
