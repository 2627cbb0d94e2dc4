"""Every version sdctl pins, in one place (charts, Kubernetes, images)."""

KUBERNETES = "1.35"
KARPENTER = "1.14.1"
KEDA = "2.20.2"

KARPENTER_CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_CHART = "keda"

#: Bottlerocket AMI alias for GPU nodes (Karpenter picks the -nvidia variant itself).
BOTTLEROCKET_ALIAS = "bottlerocket@latest"
