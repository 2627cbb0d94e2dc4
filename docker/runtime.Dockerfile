# The diffusers runtime image: a CUDA base, non-root, the AUTOMATIC1111-compatible API on
# sdctl's diffusers engine (the `runtime` extra). Models come from the volume mounted at
# /models (the chart mounts the model bucket there, read-only); SD_MODEL names the file.
#   docker build -f docker/runtime.Dockerfile -t sd-runtime .      (or: sdctl images publish)
# The CUDA base without its libraries: torch's wheels bring their own CUDA runtime, cuBLAS and
# cuDNN (inside the wheel or as nvidia-* packages) and the node's driver comes in through the NVIDIA container
# toolkit, so a cudnn-runtime base was a second copy of those libraries in every pull.
FROM nvidia/cuda:12.6.3-base-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HF_HUB_OFFLINE=1 \
    HF_HOME=/opt/huggingface \
    SD_MODELS_DIR=/models \
    SD_MODEL=model.safetensors \
    SD_PORT=7860

# gcc, libc6-dev and python3-dev are run-time needs, not build tools: with `compile: true`
# torch.compile's Triton builds a small C launcher (against Python.h) for each kernel it
# generates, in the pod; without them the runtime says so and runs uncompiled (~170 MB,
# as PyTorch's own CUDA runtime images now carry for the same reason).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.12.* python3-pip=24.0* \
       python3-dev=3.12.* gcc=4:13.2.* libc6-dev=2.39-* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdctl ./sdctl
COPY lambda_src ./lambda_src
COPY docker/extra-requirements.py ./docker/

# A single-file checkpoint needs its model type's configs and tokenizer files (no weights, a
# few MB); the runtime reads them from HF_HOME offline (sdctl/runtime/hubconfigs.py).
RUN pip3 install --no-cache-dir --no-deps . \
    && python3 docker/extra-requirements.py runtime > /tmp/runtime.txt \
    && pip3 install --no-cache-dir -r /tmp/runtime.txt \
    && HF_HUB_OFFLINE=0 python3 -m sdctl.runtime.hubconfigs \
    && rm -rf "${HF_HOME}/xet" \
    && chmod -R a+rX "${HF_HOME}" \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin runtime \
    && rm -rf /src /tmp/runtime.txt

WORKDIR /home/runtime
USER 10001
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/internal/ping', timeout=4)"]
ENTRYPOINT ["python3", "-m", "sdctl.runtime"]
