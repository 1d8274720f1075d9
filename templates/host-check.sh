#!/usr/bin/env bash
# gpuctl host check (read-only): can this host run an engine container?
# One line per check on stdout: "gpuctl-check<TAB>NAME<TAB>ok|fail<TAB>DETAIL". Exit status 1 when
# any check fails, so a caller can stop before paying for a weights download that cannot run.
set -u

expected_gpus=@@EXPECTED_GPUS@@
min_gpu_memory_mib=@@MIN_GPU_MEMORY_MIB@@
cache_dir=@@CACHE_DIR@@
min_free_gb=@@MIN_FREE_GB@@
failed=0

report() {
  printf 'gpuctl-check\t%s\t%s\t%s\n' "$1" "$2" "$3"
  if [ "$2" != ok ]; then failed=1; fi
}

check_gpus() {
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    report gpus fail "nvidia-smi not found: no NVIDIA driver"
    return
  fi
  local listing count=0 small=0 name memory
  if ! listing=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>&1); then
    report gpus fail "nvidia-smi failed: $(printf '%s' "$listing" | head -n 1)"
    return
  fi
  while IFS=, read -r name memory; do
    [ -n "$name" ] || continue
    count=$((count + 1))
    memory=${memory//[[:space:]]/}
    if ! [[ $memory =~ ^[0-9]+$ ]] || [ "$memory" -lt "$min_gpu_memory_mib" ]; then
      small=$((small + 1))
    fi
  done <<< "$listing"
  if [ "$count" -lt "$expected_gpus" ]; then
    report gpus fail "found $count GPU(s), expected $expected_gpus"
  elif [ "$small" -gt 0 ]; then
    report gpus fail "$small GPU(s) have less than $min_gpu_memory_mib MiB"
  else
    report gpus ok "$count GPU(s) with at least $min_gpu_memory_mib MiB"
  fi
}

check_docker() {
  if ! command -v docker >/dev/null 2>&1; then
    report docker fail "docker CLI not found"
    report nvidia-runtime fail "docker is missing"
    return
  fi
  local version runtimes
  if ! version=$(docker info --format '{{.ServerVersion}}' 2>&1); then
    report docker fail "docker daemon not reachable: $(printf '%s' "$version" | head -n 1)"
    report nvidia-runtime fail "docker daemon not reachable"
    return
  fi
  report docker ok "server $version"
  runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null || true)
  # --gpus works through the registered nvidia runtime or the toolkit's prestart hook
  if [[ $runtimes == *'"nvidia"'* ]]; then
    report nvidia-runtime ok "nvidia runtime registered"
  elif command -v nvidia-container-runtime-hook >/dev/null 2>&1; then
    report nvidia-runtime ok "nvidia-container-runtime-hook present"
  else
    report nvidia-runtime fail "NVIDIA Container Toolkit not installed"
  fi
}

check_cache() {
  if ! [ -d "$cache_dir" ] || ! [ -w "$cache_dir" ]; then
    report cache-dir fail "$cache_dir is missing or not writable"
    return
  fi
  local free_gb
  free_gb=$(df -Pk "$cache_dir" | awk 'NR == 2 { printf "%d", $4 * 1024 / 1e9 }')
  if [ "${free_gb:-0}" -lt "$min_free_gb" ]; then
    report cache-dir fail "$cache_dir has $free_gb GB free, needs $min_free_gb GB"
  else
    report cache-dir ok "$cache_dir has $free_gb GB free"
  fi
}

check_gpus
check_docker
check_cache
exit "$failed"
