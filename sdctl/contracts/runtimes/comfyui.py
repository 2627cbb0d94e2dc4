"""ComfyUI: a workflow graph per task (tasktype `pipeline`), followed on its websocket."""

from sdctl.contracts.runtimes import RuntimeKind

KIND = RuntimeKind(
    name="comfyui", summary="ComfyUI (a workflow graph per task)",
    task_types=("pipeline",),
    port=8188, probe_path="/system_stats", adapter="sdctl.agent.comfyui:ComfyUIAdapter",
    recipe="docker/comfyui.Dockerfile", image_name="comfyui",
    local="url",  # sdctl has no built-in ComfyUI: run one and pass --runtime-url
)
