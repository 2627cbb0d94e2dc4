"""checkov findings sdctl does not fix, and why. Written into each resource's Metadata so the
reason travels with the template; docs/security.md lists the same table (a test checks)."""

from __future__ import annotations

SKIPS: dict[str, str] = {
    "CKV_AWS_27": "Queues use SQS-managed encryption at rest (SqsManagedSseEnabled); a customer KMS key would "
                  "have to be shared with SNS, EventBridge and every consumer and bills per request.",
    "CKV_AWS_18": "Output objects are written only by the runtimes' agents; per-request server access logs "
                  "would need a second bucket. Use CloudTrail S3 data events when an audit trail is required.",
    "CKV_AWS_21": "Results are written under keys derived from the task id and expire after retentionDays; "
                  "versions would keep every retried write and double storage.",
    "CKV_AWS_116": "The API handler is invoked synchronously by API Gateway and the webhook deliverer by an "
                   "SQS event source; a Lambda dead-letter queue only applies to asynchronous invocations. "
                   "Tasks and webhook events have SQS dead-letter queues.",
    "CKV_AWS_117": "The handler calls only AWS APIs and the deliverer must reach public webhook URLs; in the "
                   "VPC they would need NAT or endpoints, cost and cold-start latency, and no less exposure.",
    "CKV_AWS_115": "Reserved concurrency is taken from the account pool (new accounts have 10); the API's "
                   "usage plan throttle already bounds the handler's concurrency.",
    "CKV_AWS_173": "The handler's environment holds only resource names and ARNs, no secrets.",
    "CKV_AWS_120": "POST /v1alpha2 submits a new task each call; a response cache would return stale ids.",
    "CKV_AWS_88": "The NAT instance (network.nat: instance) forwards the private subnets' traffic to the "
                  "internet, so it needs a public address; its security group admits only the VPC's CIDR.",
    "CKV_AWS_51": "Image tags follow sdctl's version; `sdctl images publish` re-pushes a version's tag when "
                  "its source changes. Scan on push and KMS encryption still apply.",
}


def skip(resource: dict, *ids: str) -> dict:
    """Record checkov skips (with their reasons) in a resource's Metadata."""
    meta = resource.setdefault("Metadata", {}).setdefault("checkov", {}).setdefault("skip", [])
    for i in ids:
        meta.append({"id": i, "comment": SKIPS[i]})
    return resource
