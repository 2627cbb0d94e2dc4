"""Every top-level command: the module that holds it and the one line of help `sdctl --help`
shows, written here once. The root group lists commands from this table without importing their
modules (sdctl/cli/lazy.py); each command and group takes its summary from here too
(`Commands.command`, `group_app`), so a help line cannot drift from the command's own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lazy:
    spec: str  # "module:attr": a Commands() of top-level commands, or a group_app(name)
    help: str  # the one line `sdctl --help` shows, and the first of the command's own help

#: In the order `sdctl --help` lists them.
COMMANDS = {
    "init": Lazy("sdctl.cli.config_cmds:commands",
                 "Write a documented sdctl.yaml to start from (or convert the guidance's, or ask)."),
    "validate": Lazy("sdctl.cli.config_cmds:commands",
                     "Check the config file; report every problem with its field path and line (exit 2)."),
    "synth": Lazy("sdctl.cli.deploy_cmds:commands",
                  "Write every CloudFormation template (no AWS access needed) for review and GitOps."),
    "plan": Lazy("sdctl.cli.deploy_cmds:commands", "Show what deploy would change (change sets, never executed)."),
    "deploy": Lazy("sdctl.cli.deploy_cmds:commands",
                   "Create or update the stacks in order (change set, review, confirm, execute), then install "
                   "Karpenter, KEDA and one release per runtime and wait until they are ready."),
    "destroy": Lazy("sdctl.cli.deploy_cmds:commands",
                    "Delete the stacks in reverse order, then the output and artifacts buckets (unless --keep-data)."),
    "doctor": Lazy("sdctl.cli.stack_cmds:commands",
                   "Check the tools, the config, the AWS credentials and GPU quotas, and the cluster (Karpenter, "
                   "KEDA, each runtime's ScaledObject, chart versions); each says how to fix it."),
    "kubeconfig": Lazy("sdctl.cli.stack_cmds:commands",
                       "Credentials for the EKS cluster without the aws CLI: a kubeconfig whose user runs "
                       "`sdctl kubeconfig --token` for a fresh token on each use."),
    "status": Lazy("sdctl.cli.stack_cmds:commands", "Stacks with their status and outputs."),
    "generate": Lazy("sdctl.cli.client_cmds:commands",
                     "Make images from a prompt: submit a text-to-image task, follow it (place in line, steps), "
                     "download the PNGs."),
    "submit": Lazy("sdctl.cli.client_cmds:commands",
                   "Send raw tasks as they are written: one (.json), or many at once (.jsonl) with a progress bar, "
                   "backoff on throttling and a summary (exit 1 if any was rejected, or with --wait did not "
                   "complete)."),
    "fetch": Lazy("sdctl.cli.client_cmds:commands",
                  "Download a finished task's images (exit 1 if it failed or is not finished)."),
    "cost": Lazy("sdctl.cli.cost_cmds:commands",
                 "Monthly cost from the config: GPU hours, EKS, system nodes, NAT, API Gateway, Lambda, SNS, SQS, "
                 "the task store and S3, with the price table's date, and the cost per image."),
    "simulate": Lazy("sdctl.cli.simulate_cmds:commands",
                     "Simulate a traffic pattern against the config before deploying it: queue, KEDA, HPA, pods, "
                     "Karpenter, GPU nodes; prints wait and end-to-end p50/p95/p99, GPU node-hours and cost."),
    "gallery": Lazy("sdctl.cli.ops_cmds:commands",
                    "Write a self-contained HTML page of recent results: a thumbnail grid with prompt, seed, "
                    "runtime and seconds, each linking to the full-size image."),
    "logs": Lazy("sdctl.cli.ops_cmds:commands",
                 "A runtime's (or its agent's) logs: from its pods, or on the local stack from the processes' "
                 "log files."),
    "console": Lazy("sdctl.cli.console_cmds:commands",
                    "A local web page to try prompts, watch the queues drain and act on tasks (127.0.0.1 only, "
                    "behind a token)."),
    "local": Lazy("sdctl.cli.local_cmds:app", "Run the image service on this machine (moto as AWS, CPU runtime)."),
    "queue": Lazy("sdctl.cli.queue_cmds:app", "Look at and manage the runtimes' queues."),
    "tasks": Lazy("sdctl.cli.tasks_cmds:app", "Follow and cancel tasks (from the task store)."),
    "webhooks": Lazy("sdctl.cli.webhooks_cmds:app",
                     "Signed webhook deliveries (Standard Webhooks): secret, failures, replay, verify."),
    "keys": Lazy("sdctl.cli.keys_cmds:app",
                 "API keys per client: each with its own throttle and daily quota, named on its tasks."),
    "scale": Lazy("sdctl.cli.ops_cmds:scale_app", "Scaling: from queue depth to GPU nodes."),
    "images": Lazy("sdctl.cli.images_cmds:app", "Container images: build and push without a local Docker."),
    "agent": Lazy("sdctl.cli.agent_cmds:agent_app", "The queue agent that runs beside each runtime."),
    "runtime": Lazy("sdctl.cli.agent_cmds:runtime_app", "sdctl's built-in AUTOMATIC1111-compatible runtime."),
}
