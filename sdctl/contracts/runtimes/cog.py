"""Any model packaged with Cog (replicate/cog), through its HTTP API (cog's docs/http.md): the
user's image, port 5000, readiness from GET /health-check, predictions created with the task's
id (PUT /predictions/{id}), cancelled with POST /predictions/{id}/cancel. A `text-to-image`
task is mapped to the model's inputs by the config's `inputs`; a `predict` task's content is
the model's input as it is."""

from sdctl.contracts.runtimes import RuntimeKind

#: A text-to-image task's fields and the inputs common Cog image models name them by.
DEFAULT_INPUTS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "width": "width", "height": "height",
                  "seed": "seed", "steps": "num_inference_steps", "cfg_scale": "guidance_scale",
                  "batch_size": "num_outputs"}

KIND = RuntimeKind(
    name="cog", summary="any Cog model (replicate/cog): your image, its HTTP API",
    task_types=("text-to-image", "predict"),
    port=5000, probe_path="/health-check", adapter="sdctl.agent.cog:CogAdapter",
    recipe=None, image_name=None,  # `cog build` and `cog push` make it
    local="url", needs_image=True, default_inputs=DEFAULT_INPUTS,
    notes="GET /health-check answers 200 while the model sets up; its `status` says READY, or SETUP_FAILED "
          "for good",
)
