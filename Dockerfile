# syntax=docker/dockerfile:1
# One image for `serve`, `autopilot` and every CLI command:
#   docker build -t rollout-dashboard .
#   docker run -p 8501:8501 -e ROLLOUT_DATABASE_URL=... rollout-dashboard            # serve
#   docker run -e ROLLOUT_DATABASE_URL=... rollout-dashboard autopilot
#   docker run --rm rollout-dashboard status --env production
# Without a reachable registry, build on a local base made from Debian packages
# (scripts/container-base.sh) with --build-arg BASE_IMAGE=localhost/debian-py:bookworm.
#
# Layout: the project is installed non-editable from uv.lock into its own virtual
# environment, /opt/rollout-dashboard/venv, nothing else in it; its top-level packages
# (app, pages, queries) are importable there only. The Prometheus rules are in
# /opt/rollout-dashboard/prometheus, the sample flags in /opt/rollout-dashboard/examples.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS dependencies
ARG UV_VERSION=0.13.10
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/rollout-dashboard/venv
# A CA bundle given as the build secret `cabundle` (a proxy that re-signs TLS) is used
# while downloading only, never copied into a layer; without it, the base's own store.
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export PIP_CERT=/run/secrets/cabundle; fi; \
    python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"
WORKDIR /src
# the locked dependencies only, exactly as uv.lock pins them (hashes checked)
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export SSL_CERT_FILE=/run/secrets/cabundle; fi; \
    /opt/uv/bin/uv sync --frozen --no-dev --no-install-project

FROM dependencies AS project
COPY app ./app
COPY pages ./pages
COPY queries ./queries
# the project itself, built as a wheel and installed (not editable); what it added is
# gathered in /project so that the final image copies a small layer per code change
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export SSL_CERT_FILE=/run/secrets/cabundle; fi; \
    /opt/uv/bin/uv sync --frozen --no-dev --no-editable \
    && /opt/rollout-dashboard/venv/bin/rollout-dashboard --version \
    && site="$(/opt/rollout-dashboard/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && mkdir -p "/project$site" /project/opt/rollout-dashboard/venv/bin \
    && cp -a "$site/app" "$site/pages" "$site/queries" "$site"/rollout_dashboard-*.dist-info "/project$site/" \
    && cp -a /opt/rollout-dashboard/venv/bin/rollout-dashboard /project/opt/rollout-dashboard/venv/bin/

FROM ${BASE_IMAGE}
ARG UID=10001
# The home is also group 0's, group-writable: OpenShift runs an image under an arbitrary
# UID in group 0, and the CLI then acts as `uid-<n>`.
RUN groupadd --system --gid "${UID}" rollout \
    && useradd --system --uid "${UID}" --gid "${UID}" --no-log-init \
       --home-dir /var/lib/rollout-dashboard --shell /usr/sbin/nologin rollout \
    && mkdir -p /var/lib/rollout-dashboard/state /var/lib/rollout-dashboard/flags \
    && chown -R "${UID}:0" /var/lib/rollout-dashboard \
    && chmod -R g=u /var/lib/rollout-dashboard
COPY --from=dependencies /opt/rollout-dashboard/venv /opt/rollout-dashboard/venv
COPY --from=project /project/ /
COPY deploy/prometheus /opt/rollout-dashboard/prometheus
COPY app/flags/data /opt/rollout-dashboard/examples
COPY --chown=${UID}:0 .streamlit/config.toml /var/lib/rollout-dashboard/.streamlit/config.toml
ENV PATH=/opt/rollout-dashboard/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/rollout-dashboard \
    ROLLOUT_STATE_DIR=/var/lib/rollout-dashboard/state \
    ROLLOUT_SERVER_ADDRESS=0.0.0.0
WORKDIR /var/lib/rollout-dashboard
USER ${UID}:${UID}
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["rollout-dashboard", "healthcheck"]
ENTRYPOINT ["rollout-dashboard"]
CMD ["serve", "--port", "8501"]
