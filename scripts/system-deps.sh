#!/usr/bin/env bash
# Installs what the real-component tests need from Debian (Prometheus, VictoriaMetrics,
# Chromium, an emoji font for faithful screenshots) when missing, the test OpenID Connect
# provider's npm packages (tests/oidc, from its package-lock.json) and the OpenFeature test
# service's (tests/openfeature) when missing, the pinned
# unleash-server (deploy/unleash) into ~/.cache/rollout-dashboard when missing, podman and
# what the container tests need (scripts/container-base.sh makes their base image), and
# starts the local PostgreSQL if it is installed but stopped. Idempotent; quiet when
# everything is there.
set -euo pipefail

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v chromium >/dev/null || missing+=(chromium)
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
command -v npm >/dev/null || missing+=(nodejs npm)
# the container tests: podman with runc (crun fails here), buildah, debootstrap for the
# local base image, and CNI's dnsname plugin so that compose services find each other
command -v podman >/dev/null || missing+=(podman)
command -v buildah >/dev/null || missing+=(buildah)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -e /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

oidc="$(dirname "$0")/../tests/oidc"
if [ ! -d "$oidc/node_modules" ]; then
  echo "installing the test OpenID Connect provider (npm ci --prefix tests/oidc)"
  npm ci --prefix "$oidc" --no-audit --no-fund --loglevel=error >/dev/null
fi

openfeature="$(dirname "$0")/../tests/openfeature"
if [ ! -d "$openfeature/node_modules" ]; then
  echo "installing the OpenFeature test service (npm ci --prefix tests/openfeature)"
  npm ci --prefix "$openfeature" --no-audit --no-fund --loglevel=error >/dev/null
fi

if ! "${PYTHON:-python3}" -c 'import sys; sys.path.insert(0, "."); from app.demo.unleash_server import installed_unleash; sys.exit(installed_unleash() is None)' 2>/dev/null; then
  echo "installing the pinned unleash-server into the cache (npm ci, about 20 s)"
  "${PYTHON:-python3}" -c 'import sys; sys.path.insert(0, "."); from app.demo.unleash_server import install_unleash; print(install_unleash())'
fi

if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
