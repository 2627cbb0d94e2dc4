"""Every version sdctl pins, in one place (charts, Kubernetes, node OS, add-ons, images).

Nothing here floats: a new AMI or add-on build reaches a deployed stack only when this file
changes and `sdctl plan` shows the change. `sdctl deploy` checks each add-on pin against
EKS's DescribeAddonVersions for the cluster's Kubernetes version before it creates or
updates the cluster stack, and `sdctl doctor` checks the Bottlerocket pin against its SSM
parameter, so a pin the region does not offer stops the deploy with the versions it does.
"""

KUBERNETES = "1.35"
KARPENTER = "1.14.1"
KEDA = "2.20.2"

KARPENTER_CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KEDA_REPO = "https://kedacore.github.io/charts"
KEDA_CHART = "keda"

#: Bottlerocket release for GPU nodes (Karpenter picks the -nvidia variant itself and resolves
#: /aws/service/bottlerocket/aws-k8s-<k8s>-nvidia/<arch>/<version>/image_id). Not `@latest`:
#: a new release would drift every node, including busy GPU nodes, on its own schedule.
BOTTLEROCKET = "1.63.0"
BOTTLEROCKET_ALIAS = f"bottlerocket@v{BOTTLEROCKET}"

#: EKS add-on versions for KUBERNETES. The Mountpoint S3 CSI driver must be v2 or later: v2
#: maps the pod's fsGroup, so the non-root runtime can read the mounted models.
ADDONS = {
    "vpc-cni": "v1.23.0-eksbuild.1",
    "kube-proxy": "v1.35.3-eksbuild.18",
    "eks-pod-identity-agent": "v1.3.10-eksbuild.3",
    "coredns": "v1.13.2-eksbuild.1",
    "aws-mountpoint-s3-csi-driver": "v2.7.0-eksbuild.1",
}

#: Upstream releases the runtime images are built from (the ARG defaults of
#: docker/sdwebui.Dockerfile and docker/comfyui.Dockerfile; a test keeps them equal).
SDWEBUI = "v1.10.1"
COMFYUI = "v0.3.68"
