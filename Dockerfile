# syntax=docker/dockerfile:1
# Two stages: the builder exports the embedding model to ONNX (needs torch, about 1 GB); the
# runtime stage installs the service without torch and copies only the exported model.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/export/bin:$PATH
WORKDIR /build
# Every version and hash comes from requirements.lock (deploy/requirements-*.txt are generated from
# it by `make lock`). torch alone comes from PyTorch's own CPU index: PyPI's build bundles CUDA (GBs).
COPY deploy/requirements-export.txt /tmp/requirements-export.txt
RUN python -m venv /opt/export \
    && pip install --no-cache-dir --no-deps --index-url https://download.pytorch.org/whl/cpu torch==2.13.0+cpu \
    && pip install --no-cache-dir --no-deps --require-hashes -r /tmp/requirements-export.txt
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && pip install --no-cache-dir --no-deps /wheels/tenantrag-*.whl \
    && tenantrag prepare-model --int8 --dir /opt/tenantrag/models

FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    TENANTRAG_DATA_DIR=/var/lib/tenantrag \
    TENANTRAG_MODEL_DIR=/opt/tenantrag/models
# The runtime closure from requirements.lock, every file checked against its hash: nothing outside
# it, torch above all, can slip into the image (pip refuses a dependency the list does not name).
COPY deploy/requirements-runtime.txt /tmp/requirements-runtime.txt
COPY --from=builder /wheels /tmp/wheels
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes -r /tmp/requirements-runtime.txt \
    && pip install --no-cache-dir --no-deps /tmp/wheels/tenantrag-*.whl \
    && rm -rf /tmp/wheels /tmp/requirements-runtime.txt \
    && groupadd --system --gid 10001 tenantrag \
    && useradd --system --uid 10001 --gid tenantrag --home-dir /var/lib/tenantrag \
        --no-create-home --shell /usr/sbin/nologin tenantrag \
    && install -d -o tenantrag -g tenantrag -m 0750 /var/lib/tenantrag
COPY --from=builder /opt/tenantrag/models /opt/tenantrag/models
USER 10001:10001
WORKDIR /var/lib/tenantrag
EXPOSE 8000
# python:slim has no curl; the standard library does the probe. /health answers while the process
# lives; readiness (/ready) is for orchestrators, not for restarting the container.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["tenantrag"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "4"]
