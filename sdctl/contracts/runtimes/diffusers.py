"""sdctl's own runtime (sdctl/runtime): diffusers behind the AUTOMATIC1111 API, with batching
of tasks that differ only in prompt and seed, and an optional torch.compile."""

from sdctl.contracts.runtimes import RuntimeKind

KIND = RuntimeKind(
    name="diffusers", summary="sdctl's own diffusers runtime (AUTOMATIC1111-compatible API, batching)",
    task_types=("text-to-image", "image-to-image", "extra-single-image"),
    port=7860, probe_path="/internal/ping", adapter="sdctl.agent.adapters:A1111Adapter",
    recipe="docker/runtime.Dockerfile", image_name="diffusers",
    local="builtin", batches=True, compiles=True,
)
