"""Helm through pyhelm3 and the real helm binary: render, install or upgrade, uninstall."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sdctl.builders.releases import Release
from sdctl.errors import SdctlError
from sdctl.execute.helmbin import INSTALL_HINT, find_helm


class HelmMissing(SdctlError):
    def __init__(self):
        super().__init__("the helm binary was not found", hint=INSTALL_HINT)


def client(kubeconfig: Path | None = None):
    from pyhelm3 import Client
    from pyhelm3.command import Command

    helm = find_helm()
    if helm is None:
        raise HelmMissing()

    class ClientDryRun(Command):
        """pyhelm3 spells a dry run `upgrade --install --dry-run`, which helm 4 runs against the
        cluster. sdctl's dry runs are client-side: `install --dry-run=client` needs no cluster."""

        async def run(self, command, input=None):
            if "--dry-run" in command and command[:1] == ["upgrade"] and "--install" in command:
                out, skip = ["install"], False
                for part in command[1:]:
                    if skip:
                        skip = False
                    elif part == "--history-max":
                        skip = True
                    elif part != "--install":
                        out.append("--dry-run=client" if part == "--dry-run" else part)
                command = out
            return await super().run(command, input)

    command = ClientDryRun(executable=helm, kubeconfig=kubeconfig, default_timeout="15m")
    return Client(command, executable=helm)


async def _chart(c, release: Release):
    return await c.get_chart(release.chart, repo=release.repo, version=release.version)


def render(release: Release) -> list[dict]:
    """Every object the release would create, rendered client-side by helm (no cluster)."""
    async def go():
        c = client()
        chart = await _chart(c, release)
        return list(await c.template_resources(chart, release.name, release.values, namespace=release.namespace,
                                               include_crds=True))
    return asyncio.run(go())


def install(release: Release, *, kubeconfig: Path | None, dry_run: bool = False, wait: bool = True):
    async def go():
        c = client(kubeconfig)
        chart = await _chart(c, release)
        return await c.install_or_upgrade_release(
            release.name, chart, release.values, namespace=release.namespace, create_namespace=True,
            atomic=not dry_run, wait=wait and not dry_run, dry_run=dry_run)
    return asyncio.run(go())


def uninstall(release: Release, *, kubeconfig: Path | None) -> None:
    async def go():
        c = client(kubeconfig)
        await c.uninstall_release(release.name, namespace=release.namespace, wait=True)
    asyncio.run(go())
