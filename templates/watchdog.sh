#!/usr/bin/env bash
# gpuctl TTL watchdog: once the deadline passes, stop the engine container and power the host off,
# whether or not gpuctl is still around. The deadline (Unix seconds) is re-read from a file at every
# tick, so extending a deployment is one write on the host; an unreadable file keeps the last value.
set -u

deadline_file=@@DEADLINE_FILE@@
deadline=@@FALLBACK_DEADLINE@@
container=@@CONTAINER_NAME@@
interval=@@INTERVAL_SECONDS@@
shutdown_command=@@SHUTDOWN_COMMAND@@

log() {
  printf '%s gpuctl-watchdog: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

log "armed: deadline $deadline (file $deadline_file)"
while :; do
  if [ -r "$deadline_file" ]; then
    value=""
    read -r value < "$deadline_file" || true
    case $value in
      '' | *[!0-9]*) log "ignoring deadline '$value' in $deadline_file; keeping $deadline" ;;
      *) deadline=$value ;;
    esac
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    log "deadline $deadline passed: stopping $container and shutting down"
    docker stop --time 30 "$container" >/dev/null 2>&1 || log "could not stop $container"
    sh -c "$shutdown_command"
    exit 0
  fi
  sleep "$interval"
done
