# The image `tracemesh manifests` and the operator name: every role (all-in-one, collector, query,
# ingester, agent, operator) in one Python environment, run as an unprivileged user.
#   docker build -t tracemesh/tracemesh:latest .

FROM node:20-bookworm-slim AS ui
WORKDIR /src/ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
# writes ../src/tracemesh/query/ui (vite.config.ts)
RUN npm run build

FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/* && pip install --no-cache-dir uv
ENV UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/opt/tracemesh UV_COMPILE_BYTECODE=1
WORKDIR /src
COPY pyproject.toml uv.lock setup.py README.md ./
COPY src ./src
COPY --from=ui /src/src/tracemesh/query/ui ./src/tracemesh/query/ui
# the C decoders are compiled here; the runtime image needs no compiler
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm
COPY --from=build /opt/tracemesh /opt/tracemesh
ENV PATH=/opt/tracemesh/bin:$PATH PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 4317 4318 5778 6831/udp 6832/udp 9411 14250 14268 14269 16686
ENTRYPOINT ["tracemesh"]
CMD ["all-in-one", "--host", "0.0.0.0"]
