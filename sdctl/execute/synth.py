"""`sdctl synth`: every template, its parameters, and each runtime's rendered manifests, as
files for review and GitOps. No AWS access; the manifests need helm."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sdctl.builders.cfn.stacks import Site, placeholder_outputs, stacks
from sdctl.config.model import Config

#: What the site's values read as before anything is deployed.
PLACEHOLDER_SITE = Site(code=("<artifacts bucket>", "<handler zip key>"), admin_principal="<deployer>")


def files(cfg: Config, *, manifests: bool) -> dict[str, str]:
    """Each file's text by name. With `manifests`, helm must be there (HelmMissing otherwise),
    and it is asked before anything is written."""
    out = {}
    placeholders = placeholder_outputs(cfg)
    for spec in stacks(cfg):
        out[f"{spec.name}.template.json"] = json.dumps(spec.template, indent=2) + "\n"
        out[f"{spec.name}.parameters.json"] = json.dumps(spec.parameters(placeholders, PLACEHOLDER_SITE),
                                                         indent=2, sort_keys=True) + "\n"
    if manifests:
        out.update(release_manifests(cfg))
    return out


def release_manifests(cfg: Config) -> dict[str, str]:
    """Rendered manifests of each runtime's release, and every release's spec (chart, version,
    values), by file name. Stand-in values mark what the stacks' outputs fill in at deploy time."""
    import yaml

    from sdctl.builders.releases import placeholder_outputs as release_placeholders
    from sdctl.builders.releases import releases
    from sdctl.execute.k8s.helm import render

    edge, cluster = release_placeholders(cfg)
    rels = releases(cfg, edge=edge, cluster=cluster, account="123456789012", region=cfg.region)
    out = {"releases.json": json.dumps([r.to_dict() | {"chart": r.chart if not r.runtime else "helm/sd-runtime"}
                                        for r in rels], indent=2) + "\n"}
    for rel in rels:
        if rel.runtime:
            out[f"{rel.name}.manifests.yaml"] = yaml.safe_dump_all(render(rel), sort_keys=False)
    return out


def write_all(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Every file or none: each is written beside its target and renamed into place only once
    all of them were made (a failure part-way leaves the folder as it was)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    made = []
    try:
        for name, text in files.items():
            tmp = out_dir / f".{name}.sdctl-tmp"
            tmp.write_text(text)
            made.append((tmp, out_dir / name))
    except OSError:
        for tmp, _ in made:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in made:
        os.replace(tmp, final)
    return [str(final) for _, final in made]
