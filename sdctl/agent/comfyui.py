"""The ComfyUI adapter: submit a `pipeline` task's graph, follow it, fetch its images.

Connect to /ws first, POST /prompt with the same client_id, wait for our prompt's
execution_success (or `executing` with node null), read /history, fetch each output image
with /view. If the socket drops, poll /history instead. Past the deadline, interrupt the
prompt and report a timeout.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import httpx

from sdctl.agent.adapter import Adapter
from sdctl.agent.failures import PermanentFailure, RuntimeOutput, TransientFailure

log = logging.getLogger("sdctl.agent")


class ComfyUIAdapter(Adapter):
    ready_path = "/system_stats"
    interrupt_path = "/interrupt"

    def __init__(self, base_url: str, *, timeout: float = 600, poll: float = 0.5, client: httpx.Client | None = None):
        root = base_url.rstrip("/")
        super().__init__(root, client or httpx.Client(base_url=root, timeout=httpx.Timeout(30.0, connect=5.0)))
        self.timeout = timeout
        self.poll = poll

    @classmethod
    def for_kind(cls, kind, base_url: str, *, timeout: float, settings=None) -> ComfyUIAdapter:
        return cls(base_url, timeout=timeout)

    def run(self, tasktype: str, content: dict, *, task_id: str | None = None) -> RuntimeOutput:
        if tasktype != "pipeline":
            raise PermanentFailure("unsupported-tasktype", f"a comfyui runtime takes 'pipeline' tasks, not {tasktype!r}",
                                   field="task.metadata.tasktype")
        graph = content.get("prompt") if isinstance(content.get("prompt"), dict) else content
        if not graph or not all(isinstance(n, dict) and "class_type" in n for n in graph.values()):
            raise PermanentFailure("invalid-task", "task.content must be a ComfyUI API-format graph "
                                   "({node id: {class_type, inputs}}) or {'prompt': graph}", field="task.content")
        client_id = uuid.uuid4().hex
        deadline = time.monotonic() + self.timeout
        ws = self._connect(client_id)
        try:
            prompt_id = self._submit(graph, client_id)
            if ws is not None:
                self._follow(ws, prompt_id, deadline)
        finally:
            if ws is not None:
                ws.close()
        history = self._history(prompt_id, deadline)
        images = [self._view(img) for node in history.get("outputs", {}).values() for img in node.get("images", [])
                  if img.get("type", "output") == "output"]
        return RuntimeOutput(images=images, info={"prompt_id": prompt_id, "status": history.get("status")})

    # -- steps -----------------------------------------------------------------------------
    def _connect(self, client_id: str):
        from websockets.sync.client import connect

        url = self.root.replace("http://", "ws://").replace("https://", "wss://") + f"/ws?clientId={client_id}"
        try:
            return connect(url, open_timeout=5, max_size=None)
        except Exception as e:  # no socket: poll /history instead
            log.info("ComfyUI websocket unavailable; polling /history", extra={"error": str(e)})
            return None

    def _submit(self, graph: dict, client_id: str) -> str:
        try:
            r = self.http.post("/prompt", json={"prompt": graph, "client_id": client_id})
        except httpx.HTTPError as e:
            raise TransientFailure("runtime-unavailable", f"cannot reach ComfyUI: {e}") from None
        if r.status_code >= 500:
            raise TransientFailure("runtime-error", f"ComfyUI answered {r.status_code}")
        body = r.json()
        if r.status_code >= 400 or body.get("node_errors"):
            error = body.get("error", {})
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise PermanentFailure("runtime-rejected", f"ComfyUI refused the graph: {message}; "
                                   f"node errors: {json.dumps(body.get('node_errors') or {})[:400]}",
                                   field="task.content")
        return body["prompt_id"]

    def _follow(self, ws, prompt_id: str, deadline: float) -> None:
        """Read progress until our prompt finishes; return early (to poll) if the socket drops."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.interrupt()
                raise TransientFailure("runtime-timeout", f"ComfyUI prompt {prompt_id} ran past the deadline")
            try:
                frame = ws.recv(timeout=min(left, 5.0))
            except TimeoutError:
                continue
            except Exception as e:  # dropped: poll /history
                log.info("ComfyUI websocket dropped; polling /history", extra={"error": str(e)})
                return
            if isinstance(frame, bytes):
                continue  # previews
            msg = json.loads(frame)
            data = msg.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = msg.get("type")
            if kind == "execution_success" or (kind == "executing" and data.get("node") is None):
                return
            if kind == "execution_error":
                raise PermanentFailure("pipeline-failed", f"node {data.get('node_id')} ({data.get('node_type')}) "
                                       f"failed: {data.get('exception_message', '')[:300]}", field="task.content")
            if kind == "execution_interrupted":
                raise TransientFailure("runtime-interrupted", f"ComfyUI prompt {prompt_id} was interrupted")

    def _history(self, prompt_id: str, deadline: float) -> dict:
        while True:
            try:
                body = self.http.get(f"/history/{prompt_id}").json()
            except (httpx.HTTPError, ValueError) as e:
                raise TransientFailure("runtime-unavailable", f"cannot read ComfyUI history: {e}") from None
            entry = body.get(prompt_id)
            status = (entry or {}).get("status") or {}
            if entry and (status.get("completed", True) or status.get("status_str") == "success"):
                if status.get("status_str") == "error":
                    raise PermanentFailure("pipeline-failed", f"ComfyUI prompt {prompt_id} failed", field="task.content")
                return entry
            if time.monotonic() > deadline:
                self.interrupt()
                raise TransientFailure("runtime-timeout", f"ComfyUI prompt {prompt_id} ran past the deadline")
            time.sleep(self.poll)

    def _view(self, image: dict) -> bytes:
        params = {"filename": image["filename"], "subfolder": image.get("subfolder", ""),
                  "type": image.get("type", "output")}
        r = self.http.get("/view", params=params)
        if r.status_code != 200:
            raise TransientFailure("runtime-error", f"ComfyUI /view answered {r.status_code} for {image['filename']}")
        return r.content

    def progress(self) -> dict | None:
        """ComfyUI reports progress on the websocket the run follows; not read here yet."""
        return None
