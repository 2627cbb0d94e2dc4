# The AUTOMATIC1111 runtime image (runtime type `sdwebui`): stable-diffusion-webui at a pinned
# release, API only (--nowebui), non-root. Models come from the volume mounted at
# $SD_MODELS_DIR (the chart mounts the model bucket there, read-only); SD_MODEL names the
# checkpoint. Built by `sdctl images publish` (CodeBuild in your account, or a local engine):
#   docker build -f docker/sdwebui.Dockerfile -t sdwebui .
# The release is sdctl.versions.SDWEBUI; a test keeps the two equal.
# The CUDA base without its libraries: torch's wheels bring their own CUDA runtime, cuBLAS and
# cuDNN (inside the wheel or as nvidia-* packages) and the node's driver comes in through the NVIDIA container
# toolkit, so a cudnn-runtime base was a second copy of those libraries in every pull.
FROM nvidia/cuda:12.1.1-base-ubuntu22.04

ARG SDWEBUI_VERSION=v1.10.1
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/opt/huggingface \
    SD_MODELS_DIR=/models \
    SD_MODEL="" \
    SD_PORT=8080

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.10=3.10.* python3-pip=22.0.* git=1:2.34.* \
       libgl1=1.4.* libglib2.0-0=2.72.* \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin runtime
WORKDIR /opt/sdwebui
RUN git clone --depth 1 --branch "${SDWEBUI_VERSION}" \
       https://github.com/AUTOMATIC1111/stable-diffusion-webui.git . \
    && pip3 install --no-cache-dir torch==2.1.2 torchvision==0.16.2 --index-url https://download.pytorch.org/whl/cu121 \
    && pip3 install --no-cache-dir -r requirements_versions.txt \
    # Clone the repositories and install the packages launch.py would fetch at first start,
    # so a new GPU node starts serving without reaching GitHub or PyPI.
    && python3 -c "from modules import launch_utils as l; l.args.skip_torch_cuda_test = True; l.prepare_environment()" \
    # Loading any SD 1.x or SDXL checkpoint builds its CLIP text encoder from this repository's
    # config and tokenizer (weights come from the checkpoint): fetched here, not at every start.
    && python3 -c "from huggingface_hub import snapshot_download as d; d('openai/clip-vit-large-patch14', allow_patterns=['*.json', '*.txt'])" \
    && chmod -R a+rX "${HF_HOME}" \
    && rm -rf .git /root/.cache \
    && chown -R 10001:10001 /opt/sdwebui

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/sdapi/v1/options' % os.environ['SD_PORT'], timeout=4)"]
# --no-hashing: AUTOMATIC1111 otherwise reads the whole checkpoint once more at every start to
# hash it (its hash cache lives in the pod and dies with it): seconds per GB of model, read
# from the model bucket, before the first image. Titles then carry no [hash]; the agent and the
# API match models by name.
ENTRYPOINT ["/bin/sh", "-c", "exec python3 launch.py --skip-prepare-environment --skip-version-check --no-download-sd-model --no-hashing --api --nowebui --listen --port \"$SD_PORT\" --ckpt-dir \"$SD_MODELS_DIR\" ${SD_MODEL:+--ckpt \"$SD_MODELS_DIR/$SD_MODEL\"} \"$@\"", "--"]
