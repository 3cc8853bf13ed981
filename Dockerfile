# syntax=docker/dockerfile:1
# The Meridian operator image: `meridian run` as a non-root user on a read-only root filesystem.
#
#   docker build -t ghcr.io/meridian-dev/meridian:0.1.0 .
#
# The base is pinned to an exact Python patch release and Debian suite; release builds pin it by
# digest too (--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: install the package and its dependencies into a virtualenv -------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/meridian
WORKDIR /src
# only what the wheel is built from (see .dockerignore): source edits elsewhere keep the cache
COPY pyproject.toml ./
COPY operator/ ./operator/
# byte-compiled once here: the root filesystem is read-only at run time
RUN /opt/meridian/bin/pip install --no-compile . \
    && /opt/meridian/bin/python -m compileall -q -j 0 /opt/meridian/lib

# --- runtime: the virtualenv on the same base, nothing else -----------------------------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="meridian" \
      org.opencontainers.image.description="Kubernetes operator serving LLMs on NVIDIA Triton across datacenters"
# a named user for the numeric UID the chart runs as (runAsUser: 65532), so getpass and logs resolve it
RUN groupadd --system --gid 65532 meridian \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin meridian
COPY --from=builder /opt/meridian /opt/meridian
ENV PATH=/opt/meridian/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
ENTRYPOINT ["meridian", "run"]
