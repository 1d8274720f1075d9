#!/usr/bin/env bash
# gpuctl host bootstrap (root, idempotent): makes a GPU host ready for engine containers.
# Creates the weights cache and gpuctl's private config directory, starts docker, and registers the
# NVIDIA runtime when the toolkit is installed but docker does not know it yet. It installs docker
# only through apt, and never the NVIDIA driver: a host without one is the wrong image.
# One line per step on stdout: "gpuctl-bootstrap<TAB>STEP<TAB>changed|ok|failed<TAB>DETAIL".
set -u

cache_dir=@@CACHE_DIR@@
config_dir=@@CONFIG_DIR@@
failed=0

report() {
  printf 'gpuctl-bootstrap\t%s\t%s\t%s\n' "$1" "$2" "$3"
  if [ "$2" = failed ]; then failed=1; fi
}

restart_docker() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl restart docker
  else
    service docker restart
  fi
}

if mkdir -p "$cache_dir" && chmod 0755 "$cache_dir"; then
  report cache-dir ok "$cache_dir"
else
  report cache-dir failed "cannot create $cache_dir"
fi
if mkdir -p "$config_dir" && chmod 0700 "$config_dir"; then
  report config-dir ok "$config_dir"
else
  report config-dir failed "cannot create $config_dir"
fi

if command -v docker >/dev/null 2>&1; then
  report docker-cli ok "$(command -v docker)"
elif command -v apt-get >/dev/null 2>&1 \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >/dev/null; then
  report docker-cli changed "installed docker.io"
else
  report docker-cli failed "docker is not installed and apt-get could not install it"
fi

if docker info >/dev/null 2>&1; then
  report docker-daemon ok "running"
elif restart_docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  report docker-daemon changed "started"
else
  report docker-daemon failed "the docker daemon does not answer"
fi

runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null || true)
if [[ $runtimes == *'"nvidia"'* ]] || command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
  report nvidia-runtime ok "available to docker"
elif command -v nvidia-ctk >/dev/null 2>&1 && nvidia-ctk runtime configure --runtime=docker >/dev/null \
    && restart_docker >/dev/null 2>&1; then
  report nvidia-runtime changed "registered with docker"
else
  report nvidia-runtime failed "NVIDIA Container Toolkit missing (use a GPU image such as the AWS DLAMI)"
fi

exit "$failed"
