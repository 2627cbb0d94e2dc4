"""The monthly cost model. Pure: assumptions and a price table in, line items out.

Every line is quantity x unit price, with the quantity derived from the assumptions the
way the guidance's cost table derives its own (so its table can be reproduced and
checked), plus what that table leaves out: the NAT gateway and the task store.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from sdctl.errors import UsageError

PRICES = Path(__file__).resolve().parents[1] / "data" / "prices.yaml"
MB_PER_GB = 1024 * 1024  # the guidance's KB -> GB conversion (150 KB x 1M = 143.05 GB)


@cache
def price_book() -> dict:
    import yaml

    return yaml.load(PRICES.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


def prices_for(region: str) -> dict:
    book = price_book()
    if region not in book:
        known = ", ".join(k for k in book if k != "guidance")
        raise UsageError(f"no price table for region {region}", hint=f"sdctl has prices for: {known} "
                         f"(add one to {PRICES.name}, or pass --price-per-hour for the GPU)")
    return book[region]


@dataclass(frozen=True)
class Assumptions:
    images: int = 1_000_000
    seconds_per_image: float = 1.5
    instance: str = "g5.2xlarge"
    capacity: str = "spot"  # or on-demand
    gpu_price_per_hour: float | None = None  # None: from the price table
    hours_per_month: float = 730
    system_nodes: int = 2
    system_instance: str = "m5.large"
    eks_clusters: int = 1
    images_per_task: int = 1
    request_kb: float = 16
    image_kb: float = 150
    retention_days: int = 30
    lambda_mb: int = 128
    lambda_ms: float = 100
    lambda_arch: str = "x86_64"
    api_calls_per_task: float = 1  # the POST; status polls add more
    sns_publishes_per_task: float = 2  # the request and the result
    sns_data_kb: float = 0  # SNS to SQS in one region is not billed as data transfer
    sqs_requests_per_task: float = 2
    nat_gateways: int = 0
    nat_kb_per_task: float = 0  # the agent's SQS/SNS/DynamoDB traffic, if it crosses the NAT
    nat_instances: int = 0
    nat_instance_type: str = "t4g.nano"
    public_ipv4: int = 0  # addresses held all month (NAT gateways' and NAT instances')
    store_writes_per_task: float = 0  # DynamoDB write units, index updates included
    store_reads_per_task: float = 0
    store_kb_per_task: float = 1

    @property
    def tasks(self) -> float:
        return self.images / self.images_per_task


def gpu_price(a: Assumptions, prices: dict) -> tuple[float, str]:
    """(USD per hour, where it came from)."""
    if a.gpu_price_per_hour is not None:
        return a.gpu_price_per_hour, "given"
    on_demand = prices["ec2_on_demand_per_hour"].get(a.instance)
    if a.capacity == "on-demand":
        if on_demand is None:
            raise _unknown(a.instance, prices)
        return on_demand, f"on-demand list price ({prices['as_of']})"
    spot = prices["ec2_spot_per_hour"].get(a.instance)
    if spot is not None:
        return spot, "observed spot average"
    if on_demand is None:
        raise _unknown(a.instance, prices)
    return round(on_demand * (1 - prices["spot_discount"]), 4), \
        f"estimate: on-demand less {prices['spot_discount']:.0%} (pass --price-per-hour for a live spot price)"


def _unknown(instance: str, prices: dict) -> UsageError:
    return UsageError(f"no price for instance type {instance}",
                      hint=f"known: {', '.join(prices['ec2_on_demand_per_hour'])}; or pass --price-per-hour")


#: Lines billed by the hour whether or not any image is made.
FIXED_DIMENSIONS = ("system nodes", "NAT gateway hours", "NAT instance", "public IPv4")


def cheapest_instance(types: list[str], capacity: str, prices: dict) -> str:
    """The listed GPU type with the lowest price for this capacity type: what Karpenter's
    allocation prefers (lowest-price for on-demand, price-capacity-optimized for spot, which
    favours the cheapest pools that have capacity). Unknown types are passed over; with none
    known, the first is returned (and pricing it names the problem)."""
    def price(t: str) -> float | None:
        try:
            return gpu_price(Assumptions(instance=t, capacity=capacity), prices)[0]
        except UsageError:
            return None

    known = [(price(t), i, t) for i, t in enumerate(types)]
    known = [k for k in known if k[0] is not None]
    return min(known)[2] if known else types[0]


def price_performance(types: list[str], capacity: str, seconds_per_image: float, prices: dict) -> list[dict]:
    """Each listed GPU type's price, cost per 1000 images at the given seconds per image, and
    the seconds per image at which it would cost the same per image as the cheapest: a type
    that renders faster than its break-even is the cheaper one. sdctl has no speed figures of
    its own for these GPUs; measure yours (`sdctl cost --measured` on each type)."""
    rows = []
    for t in types:
        try:
            p, source = gpu_price(Assumptions(instance=t, capacity=capacity), prices)
        except UsageError:
            continue
        rows.append({"instance": t, "usd_per_hour": p, "source": source,
                     "usd_per_1000_images": round(p * seconds_per_image / 3.6, 4)})
    if rows:
        best = min(r["usd_per_hour"] for r in rows)
        for r in rows:
            r["break_even_seconds_per_image"] = round(seconds_per_image * best / r["usd_per_hour"], 3)
    return rows


def line(service: str, dimension: str, quantity: float, unit: float, note: str = "") -> dict:
    return {"service": service, "dimension": dimension, "quantity": round(quantity, 4), "unit": unit,
            "total": round(quantity * unit, 2), "note": note}


def estimate(a: Assumptions, prices: dict) -> dict:
    """Monthly line items and totals for these assumptions."""
    if a.capacity not in ("spot", "on-demand"):
        raise UsageError(f"capacity {a.capacity!r} is not spot or on-demand")
    if a.images < 0 or a.seconds_per_image <= 0:
        raise UsageError("images must be >= 0 and seconds per image > 0")
    hours = a.hours_per_month
    tasks = a.tasks
    gpu, gpu_source = gpu_price(a, prices)
    system = prices["ec2_on_demand_per_hour"].get(a.system_instance)
    if system is None:
        raise _unknown(a.system_instance, prices)
    kept = min(a.retention_days, 30) / 30  # images alive at any time, in months of output
    lines = [
        line("Amazon EC2", f"{a.instance} {a.capacity}, GPU hours", a.images * a.seconds_per_image / 3600, gpu,
             gpu_source),
        line("Amazon API Gateway", "REST requests, millions", tasks * a.api_calls_per_task / 1e6,
             prices["api_gateway_rest_per_million"]),
        line("AWS Lambda", f"GB-seconds ({a.lambda_mb} MB, {a.lambda_ms:.0f} ms, {a.lambda_arch})",
             tasks * a.api_calls_per_task * a.lambda_mb / 1024 * a.lambda_ms / 1000,
             prices["lambda_per_gb_second"][a.lambda_arch]),
        line("AWS Lambda", "requests, millions", tasks * a.api_calls_per_task / 1e6,
             prices["lambda_per_million_requests"]),
        line("Amazon SNS", "publishes, millions", tasks * a.sns_publishes_per_task / 1e6,
             prices["sns_per_million_publishes"]),
    ]
    if a.sns_data_kb:
        lines.append(line("Amazon SNS", "data transfer, GB", tasks * a.sns_data_kb / MB_PER_GB,
                          prices["sns_data_transfer_per_gb"]))
    lines += [
        line("Amazon SQS", "requests, millions", tasks * a.sqs_requests_per_task / 1e6,
             prices["sqs_per_million_requests"]),
        line("Amazon S3", "PUT requests, thousands", (a.images + tasks) / 1000, prices["s3_per_thousand_puts"],
             "each image and each result document"),
        line("Amazon S3", "storage, GB-month", a.images * a.image_kb / MB_PER_GB * kept, prices["s3_per_gb_month"],
             f"{a.image_kb:.0f} KB images kept {a.retention_days} days"),
    ]
    if a.store_writes_per_task or a.store_reads_per_task:
        lines += [
            line("Amazon DynamoDB", "task store writes, millions", tasks * a.store_writes_per_task / 1e6,
                 prices["dynamodb_per_million_writes"], "queued, running, completed, with the status index"),
            line("Amazon DynamoDB", "task store reads, millions", tasks * a.store_reads_per_task / 1e6,
                 prices["dynamodb_per_million_reads"]),
            line("Amazon DynamoDB", "task store storage, GB-month", tasks * a.store_kb_per_task / MB_PER_GB * kept,
                 prices["dynamodb_per_gb_month"]),
        ]
    if a.eks_clusters:
        lines.append(line("Amazon EKS", "cluster hours", a.eks_clusters * hours, prices["eks_cluster_per_hour"]))
    lines.append(line("Amazon EC2", f"{a.system_instance} system nodes, hours", a.system_nodes * hours, system,
                      f"{a.system_nodes} node(s) for Karpenter, KEDA, CoreDNS"))
    if a.nat_gateways:
        lines += [
            line("Amazon VPC", "NAT gateway hours", a.nat_gateways * hours, prices["nat_gateway_per_hour"]),
            line("Amazon VPC", "NAT data processed, GB", tasks * a.nat_kb_per_task / MB_PER_GB,
                 prices["nat_gateway_per_gb"], "the agents' SQS/SNS calls; S3 and DynamoDB use gateway endpoints"),
        ]
    if a.nat_instances:
        nat_price = prices["ec2_on_demand_per_hour"].get(a.nat_instance_type)
        if nat_price is None:
            raise _unknown(a.nat_instance_type, prices)
        lines.append(line("Amazon EC2", f"{a.nat_instance_type} NAT instance, hours", a.nat_instances * hours,
                          nat_price, "no per-GB processing charge"))
    if a.public_ipv4 and "public_ipv4_per_hour" in prices:
        lines.append(line("Amazon VPC", "public IPv4 address hours", a.public_ipv4 * hours,
                          prices["public_ipv4_per_hour"], "the NAT's address"))
    total = round(sum(x["total"] for x in lines), 2)
    variable = round(sum(x["total"] for x in lines if x["service"] not in ("Amazon EKS",)
                         and not any(k in x["dimension"] for k in FIXED_DIMENSIONS)), 2)
    return {"lines": lines, "total": total, "variable": variable, "fixed": round(total - variable, 2),
            "per_image": round(total / a.images, 6) if a.images else None,
            "per_1000_images": round(total / a.images * 1000, 4) if a.images else None,
            "assumptions": a.__dict__, "prices_as_of": prices["as_of"], "prices_source": prices["source"]}


def guidance_assumptions() -> Assumptions:
    g = price_book()["guidance"]["assumptions"]
    return Assumptions(images=g["images"], seconds_per_image=g["seconds_per_image"], instance=g["instance"],
                       capacity=g["capacity"], gpu_price_per_hour=g["gpu_price_per_hour"],
                       hours_per_month=g["hours_per_month"], system_nodes=g["system_nodes"],
                       system_instance=g["system_instance"], request_kb=g["request_kb"], image_kb=g["image_kb"],
                       lambda_mb=g["lambda_mb"], lambda_ms=g["lambda_ms"], lambda_arch=g["lambda_arch"],
                       # their table's SNS data line: 7.62 GB per million images, 8 KiB each
                       sns_data_kb=8)


def guidance_prices() -> dict:
    """The guidance's April 2024 unit prices (EKS at 720 hours for $72)."""
    return {**price_book()["us-west-2"], "as_of": "2024-04", "source": "the guidance's cost table"}


def sdctl_assumptions(cfg, **overrides) -> Assumptions:
    """What the config deploys: its first runtime's cheapest listed GPU type (what Karpenter
    launches) with its first capacity type, its system nodes and NAT, an arm64 Lambda and the
    task store."""
    rt = cfg.runtimes[0]
    own_vpc = not cfg.network.vpc_id
    gateways = (3 if cfg.network.nat_per_zone else 1) if own_vpc and cfg.network.nat == "gateway" else 0
    instances = 1 if own_vpc and cfg.network.nat == "instance" else 0
    capacity = overrides.get("capacity") or rt.nodes.capacity_types[0]
    base = Assumptions(
        instance=cheapest_instance(rt.nodes.instance_types, capacity, prices_for(cfg.region)) if cfg.region
        in price_book() else rt.nodes.instance_types[0], capacity=capacity,
        images_per_task=1, retention_days=cfg.output.retention_days,
        system_nodes=0 if cfg.cluster.existing else cfg.cluster.system_nodes.count,
        system_instance=cfg.cluster.system_nodes.instance_types[0], eks_clusters=0 if cfg.cluster.existing else 1,
        lambda_mb=256, lambda_ms=100, lambda_arch="arm64",
        # SNS delivery, receive, delete, and about one batched heartbeat per task
        sqs_requests_per_task=3.2, nat_gateways=gateways, nat_kb_per_task=20 if gateways else 0,
        nat_instances=instances, nat_instance_type=cfg.network.nat_instance_type, public_ipv4=gateways + instances,
        store_writes_per_task=8, store_reads_per_task=2)
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def compare_guidance() -> dict:
    """Their table, sdctl's reproduction from the same assumptions, and what it leaves out."""
    book = price_book()["guidance"]
    theirs = book["lines"]
    ours = estimate(guidance_assumptions(), guidance_prices())
    their_sum = round(sum(x["total"] for x in theirs), 2)
    a = guidance_assumptions()
    left_out = estimate(replace(a, nat_gateways=1, nat_kb_per_task=20, store_writes_per_task=8,
                                store_reads_per_task=2), guidance_prices())
    extra = [x for x in left_out["lines"] if x["service"] in ("Amazon VPC", "Amazon DynamoDB")]
    return {
        "theirs": {"lines": theirs, "lines_sum": their_sum, "stated_total": book["stated_total"]},
        "reproduced": ours,
        "difference_pct": round((ours["total"] - their_sum) / their_sum * 100, 2),
        "difference_vs_stated_pct": round((ours["total"] - book["stated_total"]) / book["stated_total"] * 100, 2),
        "left_out": {"lines": extra, "total": round(sum(x["total"] for x in extra), 2),
                     "with_them": round(ours["total"] + sum(x["total"] for x in extra), 2)},
    }
