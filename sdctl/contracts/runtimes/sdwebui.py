"""AUTOMATIC1111's stable-diffusion-webui, the guidance's runtime, through its /sdapi/v1 API."""

from sdctl.contracts.runtimes import RuntimeKind

KIND = RuntimeKind(
    name="sdwebui", summary="AUTOMATIC1111 stable-diffusion-webui (the guidance's runtime)",
    task_types=("text-to-image", "image-to-image", "extra-single-image"),
    port=8080, probe_path="/sdapi/v1/options", adapter="sdctl.agent.adapters:A1111Adapter",
    recipe="docker/sdwebui.Dockerfile", image_name="sdwebui",
    local="builtin",  # sdctl's own runtime speaks the same API on a CPU
)
