"""`sdctl local up|down|status`: bring the local stack up, keep it running, take it down."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from pathlib import Path

from sdctl.builders.local_plan import local_plan
from sdctl.config.model import Config
from sdctl.contracts.agent_env import for_runtime
from sdctl.contracts.edge_env import deliverer_environment, handler_environment
from sdctl.contracts.events import Event, Report, ignore
from sdctl.contracts.runtimes import kind
from sdctl.errors import LocalStackError
from sdctl.execute.local import state as st
from sdctl.execute.local.lifecycle import (  # noqa: F401 - re-exported for the CLI
    clean_leftovers,
    data_path,
    down,
    require_extras,
    spawn_detached,
)
from sdctl.execute.local.provision import provision
from sdctl.execute.local.serve import restore_event, supervise
from sdctl.execute.local.supervisor import ProcSpec, Supervisor

LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: Settings of the user's real AWS account that must never reach the local processes.
SCRUBBED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")


def base_env(region: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(LOCAL_CREDENTIALS, AWS_DEFAULT_REGION=region, AWS_REGION=region, PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def local_clients(aws_url: str, region: str, credentials: dict[str, str] | None = None,
                  services: tuple[str, ...] = ("sns", "sqs", "s3", "dynamodb", "secretsmanager"),
                  durable: bool = True):
    """Clients for the emulator, signed with `credentials` (an AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY pair; the state's operator by default for the CLI). `durable`: each
    call that changes something returns once the emulator has it on disk."""
    import boto3

    from sdctl.execute.aws.session import client_config
    from sdctl.execute.local.emulator.durable import durable_header

    creds = credentials or LOCAL_CREDENTIALS
    session = boto3.session.Session(region_name=region, aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    if durable:  # what a command changes is on disk before the command says it is done
        session.events.register("before-sign", durable_header)
    return {n: session.client(n, endpoint_url=aws_url, config=client_config(n)) for n in services}


def default_api_key(apigateway, stack: str, value: str | None = None) -> str:
    """The stack's own key, as `sdctl deploy` makes it on AWS: in the emulator's API Gateway,
    tagged as the `default` client, so the gateway and the handler treat every key alike. A
    stack started on kept data keeps the key its callers already have."""
    from sdctl.contracts.tasks import CLIENT_TAG, DEFAULT_CLIENT

    name = f"{stack}-key"
    for key in apigateway.get_api_keys(includeValues=True, nameQuery=name)["items"]:
        if key["name"] == name and key.get("enabled"):
            return key["value"]
    value = value or secrets.token_urlsafe(24)
    apigateway.create_api_key(name=name, value=value, enabled=True, tags={CLIENT_TAG: DEFAULT_CLIENT})
    return value


def grant_least_privilege(cfg: Config, resources: dict, aws_url: str) -> dict[str, dict[str, str]]:
    """Create each component's credentials with its template policy, then turn enforcement on."""
    from sdctl.builders.names import LOCAL_ACCOUNT
    from sdctl.execute.local import iam

    docs = iam.documents(resources, region=cfg.region, account=LOCAL_ACCOUNT, model_bucket=cfg.model_bucket.name)
    creds = iam.create(local_clients(aws_url, cfg.region, services=("iam",), durable=False)["iam"], docs,
                       cfg.stack_name)
    iam.enforce(aws_url)
    return creds


def _gateway_key_reader(credentials: dict) -> dict[str, str]:
    """The gateway stands in for API Gateway, an AWS service, not a component: it reads the
    keys (values included) as the operator, which no component's policy allows."""
    from sdctl.execute.local import iam

    creds = credentials.get(iam.OPERATOR) or LOCAL_CREDENTIALS
    return {"GATEWAY_KEYS_ACCESS_KEY_ID": creds["AWS_ACCESS_KEY_ID"],
            "GATEWAY_KEYS_SECRET_ACCESS_KEY": creds["AWS_SECRET_ACCESS_KEY"]}


def process_specs(cfg: Config, resources: dict, *, aws_url: str, api_key: str, agents: int, model: str,
                  runtime_urls: dict[str, str], env: dict[str, str],
                  credentials: dict[str, dict[str, str]] | None = None,
                  ports, allow_local_webhooks: bool = False, keep_data: bool = False) -> list[ProcSpec]:
    """The gateway, the webhook deliverer, one runtime per configured runtime (unless given a
    URL) and the agents, each signing with its own credentials where the stack enforces IAM."""
    from sdctl.execute.local import iam
    from sdctl.execute.local.emulator.durable import SYNC_PATH

    py = sys.executable
    credentials = credentials or {}
    specs = []
    hooks = resources["webhooks"]
    port = ports.take("gateway")
    specs.append(ProcSpec(
        role="gateway", name="gateway", argv=[py, "-m", "sdctl.execute.local.gateway"], port=port,
        url=f"http://127.0.0.1:{port}", ready_path="/ping",
        env=dict(env, **credentials.get(iam.HANDLER, {}), AWS_ENDPOINT_URL=aws_url, GATEWAY_API_KEY=api_key,
                 GATEWAY_PORT=str(port), **_gateway_key_reader(credentials),
                 **handler_environment(topic_arn=resources["requests_topic_arn"], bucket=resources["bucket"],
                                       runtimes={r.name: r.type for r in cfg.runtimes},
                                       default_prefix=resources["prefix"],
                                       tasks_table=resources.get("tasks_table") or "",
                                       task_ttl_days=resources["task_ttl_days"], webhook_queue_url=hooks["queue_url"],
                                       allow_loopback=allow_local_webhooks),
                 GATEWAY_RATE=str(cfg.api.throttle.rate_limit), GATEWAY_BURST=str(cfg.api.throttle.burst_limit),
                 GATEWAY_SYNC_URL=f"{aws_url}{SYNC_PATH}" if keep_data else "")))
    specs.append(ProcSpec(  # what the Lambda event source and the deliverer function do on AWS
        role="webhooks", name="webhooks", argv=[py, "-m", "sdctl.execute.local.webhooks"],
        env=dict(env, **credentials.get(iam.WEBHOOKS, {}), AWS_ENDPOINT_URL=aws_url,
                 **deliverer_environment(queue_url=hooks["queue_url"],
                                         dead_letter_queue_url=hooks["dead_letter_queue_url"],
                                         secret_arn=hooks["secret_arn"], allow_loopback=allow_local_webhooks,
                                         secret_cache_seconds=1))))
    for rt in cfg.runtimes:
        url = runtime_urls.get(rt.name)
        if url is None:
            k = kind(rt.type)
            if k.local != "builtin":
                raise LocalStackError(
                    f"runtime {rt.name!r} is {rt.type}: the local stack runs no {rt.type} runtime of its own",
                    hint=f"start it yourself and pass --runtime-url {rt.name}=http://127.0.0.1:{k.port}")
            port = ports.take(f"runtime-{rt.name}")
            url = f"http://127.0.0.1:{port}"
            specs.append(ProcSpec(
                role="runtime", name=f"runtime-{rt.name}", runtime=rt.name, port=port, url=url,
                ready_path="/internal/ping", env=env,
                argv=[py, "-m", "sdctl.runtime", "--model", model, "--host", "127.0.0.1",  # the image's entrypoint
                      "--port", str(port)]))
        r = resources["runtimes"][rt.name]
        agent_env = for_runtime(
            rt, queue_url=r["queue_url"], results_topic_arn=resources["results_topic_arn"],
            bucket=resources["bucket"], tasks_table=resources.get("tasks_table") or "",
            task_ttl_days=resources["task_ttl_days"], region=cfg.region, api_base_url=url,
            webhook_queue_url=hooks["queue_url"],
            lane_urls={p: lane["queue_url"] for p, lane in r["lanes"].items()},
            # A short window: a killed agent's task is back on the queue in seconds.
            visibility_seconds=6)
        for i in range(agents):
            specs.append(ProcSpec(
                role="agent", name=f"agent-{rt.name}-{i + 1}", runtime=rt.name,
                argv=[py, "-m", "sdctl.agent"],  # the agent image's entrypoint
                env=dict(env, **credentials.get(iam.agent(rt.name), {}), AWS_ENDPOINT_URL=aws_url, **agent_env)))
    return specs


def run(cfg: Config, config_path: str, *, agents: int = 1, model: str = "tiny",
        runtime_urls: dict[str, str] | None = None, visibility_seconds: int | None = None,
        enforce_iam: bool = True, allow_local_webhooks: bool = False, keep_data: bool = True,
        port: int | None = None, report: Report = ignore) -> None:
    """Run the local stack in this process until SIGTERM/SIGINT. Writes state as it goes.
    With `keep_data` the emulator keeps its data in `.sdctl/aws/` (sdctl/execute/local/emulator/persist.py):
    a stack started there again gets it back, and an emulator that dies is restarted with it."""
    from sdctl.execute.local.emulator import persist
    existing = st.read()
    if existing and st.pid_alive(existing.get("supervisor_pid")) and existing["supervisor_pid"] != os.getpid():
        raise LocalStackError(f"a local stack is already running (pid {existing['supervisor_pid']})",
                              hint="stop it with `sdctl local down`")
    if existing and existing.get("supervisor_pid") != os.getpid():
        clean_leftovers(existing, report)
    stopping = {"flag": False, "ready": False}

    def on_signal(signum, frame):
        # Before the stack is ready, stop at once (the finally below tears down what started);
        # once it serves, finish the current poll and stop.
        stopping["flag"] = True
        if not stopping["ready"]:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sup = Supervisor(st.state_dir() / "logs")
    env = base_env(cfg.region)
    from sdctl.execute.local.ports import Ports

    ports = Ports({"gateway": port} if port else {}, report)  # the ports of the last run, where free
    aws_port = ports.take("aws")
    aws_url = f"http://127.0.0.1:{aws_port}"
    data_dir = data_path() if keep_data else None
    state = {"status": "starting", "supervisor_pid": os.getpid(), "started_at": time.time(),
             "config": str(Path(config_path).absolute()), "stack": cfg.stack_name, "region": cfg.region,
             "aws_url": aws_url, "processes": [], "logs": str(sup.log_dir),
             "data": str(data_dir) if data_dir else None, "aws_restarts": 0}
    st.write(state)
    try:
        require_extras(cfg, runtime_urls or {})
        report(Event("local:aws", f"starting the AWS emulator on {aws_url}"))
        moto = sup.start(ProcSpec(role="aws", name="aws", port=aws_port, url=aws_url, ready_path="/moto-api/",
                                  argv=[sys.executable, "-m", "sdctl.execute.local.emulator", "-H", "127.0.0.1", "-p",
                                        str(aws_port), *(["--data", str(data_dir)] if data_dir else [])],
                                  env=env))
        sup.wait_ready(moto, 60)
        if data_dir:
            state["restored"] = restored = persist.read_restore(data_dir) or {}
            report(restore_event(restored, data_dir))
        resources, api_key, credentials = _provision(cfg, aws_url, moto, visibility_seconds=visibility_seconds,
                                                     enforce_iam=enforce_iam, keep_data=bool(data_dir),
                                                     report=report)
        specs = process_specs(cfg, resources, aws_url=aws_url, api_key=api_key, agents=agents, model=model,
                              runtime_urls=runtime_urls or {}, env=env, credentials=credentials,
                              allow_local_webhooks=allow_local_webhooks, keep_data=bool(data_dir), ports=ports)
        children = [sup.start(s) for s in specs]
        gateway = children[0]
        state.update(gateway_url=gateway.spec.url, api_key=api_key, resources=resources,
                     processes=sup.describe(), iam_enforced=enforce_iam, credentials=credentials or {},
                     local_webhooks=allow_local_webhooks)
        st.write(state)
        for child in children:
            if child.spec.url:
                report(Event(f"local:{child.spec.name}", f"waiting for {child.spec.name}", "progress", "starting"))
                sup.wait_ready(child, 300)
        state.update(status="ready", ready_at=time.time(), processes=sup.describe(), agents=agents)
        st.write(state)
        stopping["ready"] = True
        report(Event("local", f"ready: gateway {gateway.spec.url}", "ok", "ready", {"gateway_url": gateway.spec.url}))
        supervise(sup, moto, state, data_dir, stopping, report)
    except LocalStackError as e:
        state.update(status="failed", error=e.message, hint=e.hint)
        st.write(state)
        raise
    finally:
        report(Event("local", "stopping", "step", "stopping"))
        sup.stop()
        if state.get("status") != "failed":
            st.remove()


def _provision(cfg: Config, aws_url: str, moto, *, visibility_seconds: int | None, enforce_iam: bool,
               keep_data: bool, report: Report) -> tuple[dict, str, dict | None]:
    """The plan's topics, queues, bucket and table; the default API key; with `enforce_iam`, each
    component's credentials under its template's policy. Their resources, key and credentials."""
    from sdctl.execute.local.emulator.durable import SYNC_PATH

    report(Event("local:aws", "creating topics, queues and the bucket"))
    # Provisioning is one unit: no snapshot per call, one at the end.
    resources = provision(local_plan(cfg, visibility_seconds=visibility_seconds),
                          **local_clients(aws_url, cfg.region, durable=False))
    api_key = default_api_key(local_clients(aws_url, cfg.region, services=("apigateway",),
                                            durable=False)["apigateway"], cfg.stack_name)
    credentials = None
    if enforce_iam:
        report(Event("local:iam", "granting each component its template's IAM policy; enforcing IAM"))
        credentials = grant_least_privilege(cfg, resources, aws_url)
        # An emulator restarted with this data enforces IAM from its first request.
        moto.spec.env = dict(moto.spec.env, INITIAL_NO_AUTH_ACTION_COUNT="0")
    if keep_data:  # the processes about to start hold these credentials: on disk first
        import httpx

        httpx.post(f"{aws_url}{SYNC_PATH}", timeout=60).raise_for_status()
    return resources, api_key, credentials
