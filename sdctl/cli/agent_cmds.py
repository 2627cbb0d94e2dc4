"""`sdctl agent run` and `sdctl runtime serve`: the programs that run inside the service."""

from __future__ import annotations

from typing import Annotated

import typer

from sdctl.cli.lazy import group_app

agent_app = group_app("agent")
runtime_app = group_app("runtime")


@agent_app.command("run")
def agent_run(
    max_tasks: Annotated[int | None, typer.Option(help="Exit after this many tasks (for tests).")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR.")] = "INFO",
) -> None:
    """Consume the runtime's queue (configured by SQS_QUEUE_URL, SNS_TOPIC_ARN, S3_BUCKET, ...):
    the same program as the agent image's entrypoint, `python -m sdctl.agent`."""
    from sdctl.agent.__main__ import main

    argv = ["--log-level", log_level] + (["--max-tasks", str(max_tasks)] if max_tasks is not None else [])
    code = main(argv)
    if code:
        raise typer.Exit(code)


@runtime_app.command("serve")
def runtime_serve(
    model: Annotated[str, typer.Option(help="'tiny' (built offline) or a local diffusers folder / checkpoint.")] = "tiny",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 7860,
    models_dir: Annotated[str | None, typer.Option(help="Folder of further models tasks may switch to.")] = None,
) -> None:
    """Serve the AUTOMATIC1111 API (/sdapi/v1/...) on diffusers; CUDA when present, else CPU."""
    from sdctl.errors import SdctlError

    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise SdctlError("the built-in runtime needs torch and diffusers",
                         hint="pip install 'sdctl[tiny]'") from None
    from sdctl.runtime.__main__ import main

    main(["--model", model, "--host", host, "--port", str(port), *(["--models-dir", models_dir] if models_dir else [])])
