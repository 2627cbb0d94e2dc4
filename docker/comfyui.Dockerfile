# The ComfyUI runtime image (runtime type `comfyui`): ComfyUI at a pinned release, non-root,
# its HTTP and websocket API on $SD_PORT. Checkpoints come from the volume mounted at
# $SD_MODELS_DIR (the chart mounts the model bucket there, read-only). Built by
# `sdctl images publish` (CodeBuild in your account, or a local engine):
#   docker build -f docker/comfyui.Dockerfile -t comfyui .
# The release is sdctl.versions.COMFYUI; a test keeps the two equal.
# The CUDA base without its libraries: torch's wheels bring their own CUDA runtime, cuBLAS and
# cuDNN (inside the wheel or as nvidia-* packages) and the node's driver comes in through the NVIDIA container
# toolkit, so a cudnn-runtime base was a second copy of those libraries in every pull.
FROM nvidia/cuda:12.6.3-base-ubuntu24.04

ARG COMFYUI_VERSION=v0.3.68
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    SD_MODELS_DIR=/models \
    SD_PORT=8188

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.12.* python3-pip=24.0* git=1:2.43.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin runtime
WORKDIR /opt/comfyui
RUN git clone --depth 1 --branch "${COMFYUI_VERSION}" https://github.com/comfyanonymous/ComfyUI.git . \
    && pip3 install --no-cache-dir torch==2.7.1 torchvision==0.22.1 torchaudio==2.7.1 \
       --index-url https://download.pytorch.org/whl/cu126 \
    && pip3 install --no-cache-dir -r requirements.txt \
    && printf 'sdctl:\n  base_path: %s\n  checkpoints: .\n  loras: loras\n  vae: vae\n' "${SD_MODELS_DIR}" \
       > extra_model_paths.yaml \
    && rm -rf .git /root/.cache \
    && chown -R 10001:10001 /opt/comfyui

USER 10001
EXPOSE 8188
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/system_stats' % os.environ['SD_PORT'], timeout=4)"]
ENTRYPOINT ["/bin/sh", "-c", "exec python3 main.py --listen 0.0.0.0 --port \"$SD_PORT\" --disable-auto-launch --extra-model-paths-config extra_model_paths.yaml --output-directory /tmp/output --temp-directory /tmp/comfy \"$@\"", "--"]
