"""Runtime types as plug-ins: one module per type declares everything about it (RuntimeKind),
and nothing else in sdctl names a type. The config checks a runtime against its kind, the API
handler takes its task types, the chart gets its port and probe, the image builds use its
recipe (or the user brings the image), the local stack runs it or asks for --runtime-url, and
the agent loads its adapter (sdctl/agent/adapter.py is the interface every adapter keeps).

Adding a type: a module here with its KIND, its adapter under sdctl/agent/, its image recipe
under docker/ if sdctl builds one, and docs. Standard library only: the agent image and the
Lambda zip carry it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field

#: The modules of this package that declare a type, in the order docs, prompts and image builds list them.
MODULES = ("diffusers", "sdwebui", "comfyui", "cog")


@dataclass(frozen=True)
class RuntimeKind:
    name: str
    summary: str
    task_types: tuple[str, ...]  # metadata.tasktype values it takes
    port: int  # the runtime container's API port
    probe_path: str  # answers only once the model is loaded: the chart's startup and readiness probe
    adapter: str  # "module:Class" of its agent adapter
    #: The Dockerfile sdctl builds its image from, and the image's name; None: the user brings it.
    recipe: str | None = None
    image_name: str | None = None
    #: "builtin": the local stack runs sdctl's own CPU runtime for it; "url": it needs --runtime-url.
    local: str = "url"
    batches: bool = False  # the adapter takes several tasks in one call (agent.batchTasks)
    compiles: bool = False  # the runtime can torch.compile its model (compile: true)
    needs_image: bool = False  # the config must name `image`
    #: The config's `inputs`: the model's input each task field maps to (None: no mapping taken).
    default_inputs: dict[str, str] | None = field(default=None)
    #: What the probe's answer means when it is not ready yet, if the type says (see cog).
    notes: str = ""


def kinds() -> dict[str, RuntimeKind]:
    """Every type, by name."""
    if not _KINDS:
        for module in MODULES:
            kind = importlib.import_module(f"{__name__}.{module}").KIND
            _KINDS[kind.name] = kind
    return _KINDS


_KINDS: dict[str, RuntimeKind] = {}


def kind(name: str) -> RuntimeKind:
    try:
        return kinds()[name]
    except KeyError:
        raise ValueError(f"unknown runtime type {name!r}; sdctl has {', '.join(kinds())}") from None


def names() -> tuple[str, ...]:
    return tuple(kinds())


def task_types() -> dict[str, tuple[str, ...]]:
    """metadata.tasktype each type accepts (the wire contract)."""
    return {k.name: k.task_types for k in kinds().values()}


#: The fields of a text-to-image task (AUTOMATIC1111's txt2img body) an `inputs` mapping may map.
TASK_FIELDS = ("prompt", "negative_prompt", "width", "height", "seed", "steps", "cfg_scale", "batch_size",
               "sampler_name")
#: An input's name in a model's schema (a Python identifier, as Cog's inputs are).
INPUT_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def mapping(kind_: RuntimeKind, configured: dict[str, str | None] | None) -> dict[str, str]:
    """The task field -> model input mapping a runtime uses: the type's defaults, then the
    config's own entries (null drops a field)."""
    merged = {**(kind_.default_inputs or {}), **(configured or {})}
    return {k: v for k, v in merged.items() if v}


#: The type a runtime of the guidance's config has when it names none (its only one).
GUIDANCE_DEFAULT = "sdwebui"
