"""The ComfyUI adapter against a small fake ComfyUI (HTTP + websocket) on loopback.

No real ComfyUI runs here; the fake speaks its documented routes (/prompt, /ws, /history,
/view, /interrupt, /system_stats) and is scripted by the graph's SaveImage prefix.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from sdctl.agent.comfyui import ComfyUIAdapter
from sdctl.agent.failures import PermanentFailure, TransientFailure
from tests.conftest import ServerThread


def graph(prefix: str) -> dict:
    return {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "model": ["4", 0]}},
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5.safetensors"}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}}}


@pytest.fixture(scope="module")
def comfy():
    state = {"history": {}, "sockets": {}, "interrupts": 0}

    async def system_stats(request):
        return JSONResponse({"system": {"comfyui_version": "0.3.0"}, "devices": []})

    async def ws(websocket: WebSocket):
        await websocket.accept()
        client = websocket.query_params["clientId"]
        state["sockets"][client] = websocket
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            state["sockets"].pop(client, None)

    async def run(prompt_id: str, client: str, prefix: str):
        sock = state["sockets"].get(client)

        async def say(kind, **data):
            if sock is not None and prefix != "drop":
                await sock.send_text(json.dumps({"type": kind, "data": {"prompt_id": prompt_id, **data}}))

        if prefix == "drop" and sock is not None:
            await sock.close()
        await say("execution_start")
        await sock.send_bytes(b"\x00\x01preview") if sock is not None and prefix != "drop" else None
        if prefix == "stuck":
            return
        await asyncio.sleep(0.2)
        if prefix == "error":
            await say("execution_error", node_id="3", node_type="KSampler", exception_message="CUDA out of memory")
            state["history"][prompt_id] = {"outputs": {}, "status": {"status_str": "error", "completed": False}}
            return
        await say("progress", value=2, max=2, node="3")
        outputs = {"9": {"images": [{"filename": f"{prefix}_00001_.png", "subfolder": "", "type": "output"},
                                    {"filename": f"{prefix}_00002_.png", "subfolder": "", "type": "output"},
                                    {"filename": "preview.png", "subfolder": "", "type": "temp"}]}}
        state["history"][prompt_id] = {"outputs": outputs, "status": {"status_str": "success", "completed": True}}
        await say("executing", node=None)

    async def prompt(request: Request):
        body = await request.json()
        g = body["prompt"]
        prefix = g["9"]["inputs"]["filename_prefix"]
        if prefix == "bad":
            return JSONResponse({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"},
                                 "node_errors": {"4": {"errors": [{"message": "Value not in list"}], "class_type": "CheckpointLoaderSimple"}}},
                                status_code=400)
        prompt_id = str(uuid.uuid4())
        asyncio.get_running_loop().create_task(run(prompt_id, body["client_id"], prefix))
        return JSONResponse({"prompt_id": prompt_id, "number": 1, "node_errors": {}})

    async def history(request: Request):
        pid = request.path_params["pid"]
        return JSONResponse({pid: state["history"][pid]} if pid in state["history"] else {})

    async def view(request: Request):
        return Response(f"PNG:{request.query_params['filename']}".encode(), media_type="image/png")

    async def interrupt(request: Request):
        state["interrupts"] += 1
        return JSONResponse({})

    app = Starlette(routes=[Route("/system_stats", system_stats), WebSocketRoute("/ws", ws),
                            Route("/prompt", prompt, methods=["POST"]), Route("/history/{pid}", history),
                            Route("/view", view), Route("/interrupt", interrupt, methods=["POST"])])
    with ServerThread(app) as server:
        server.state = state
        yield server


def test_runs_a_pipeline_and_fetches_every_output_image(comfy):
    adapter = ComfyUIAdapter(comfy.url, timeout=10)
    assert adapter.ready()
    out = adapter.run("pipeline", {"prompt": graph("fox")})
    assert out.images == [b"PNG:fox_00001_.png", b"PNG:fox_00002_.png"]  # temp previews are skipped
    assert out.info["status"]["status_str"] == "success"


def test_falls_back_to_polling_history_when_the_socket_drops(comfy):
    out = ComfyUIAdapter(comfy.url, timeout=10, poll=0.05).run("pipeline", graph("drop"))
    assert out.images == [b"PNG:drop_00001_.png", b"PNG:drop_00002_.png"]


def test_refused_graph_and_node_errors_are_permanent_with_details(comfy):
    with pytest.raises(PermanentFailure) as e:
        ComfyUIAdapter(comfy.url, timeout=10).run("pipeline", graph("bad"))
    assert e.value.code == "runtime-rejected" and "Value not in list" in e.value.message
    with pytest.raises(PermanentFailure) as e:
        ComfyUIAdapter(comfy.url, timeout=10).run("pipeline", graph("error"))
    assert e.value.code == "pipeline-failed" and "CUDA out of memory" in e.value.message


def test_a_stuck_prompt_is_interrupted_at_the_deadline(comfy):
    before = comfy.state["interrupts"]
    with pytest.raises(TransientFailure) as e:
        ComfyUIAdapter(comfy.url, timeout=1.0).run("pipeline", graph("stuck"))
    assert e.value.code == "runtime-timeout"
    assert comfy.state["interrupts"] == before + 1


def test_only_pipeline_tasks_with_a_graph():
    adapter = ComfyUIAdapter("http://127.0.0.1:9", timeout=1)
    with pytest.raises(PermanentFailure) as e:
        adapter.run("text-to-image", {"prompt": "a fox"})
    assert e.value.code == "unsupported-tasktype"
    with pytest.raises(PermanentFailure) as e:
        adapter.run("pipeline", {"prompt": "a fox"})
    assert e.value.code == "invalid-task"
