# The queue agent image: slim Python, non-root, only what `python -m sdctl.agent` imports
# (the `agent` extra), none of the CLI's libraries.
#   docker build -f docker/agent.Dockerfile -t queue-agent .      (or: sdctl images publish)
FROM python:3.12.8-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdctl ./sdctl
COPY lambda_src ./lambda_src
COPY docker/extra-requirements.py ./docker/

# Install sdctl without its dependencies, then exactly the `agent` extra's.
RUN pip install --no-cache-dir --no-deps . \
    && python docker/extra-requirements.py agent > /tmp/agent.txt \
    && pip install --no-cache-dir -r /tmp/agent.txt \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin agent \
    && rm -rf /src /tmp/agent.txt

WORKDIR /
USER 10001
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "sdctl.agent"]
