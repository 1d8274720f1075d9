#!/usr/bin/env bash
# gpuctl watchdog: ends the deployment on the machine itself, whether or not gpuctl is still around,
# when the first of these comes:
#   - the TTL deadline (Unix seconds; 0: none). It is re-read from a file at every tick, so extending
#     a deployment is one write on the host; an unreadable file keeps the last value;
#   - the budget deadline (Unix seconds; 0: none): when price x uptime reaches the budget;
#   - the idle limit (seconds; 0: none): that long without a request, read from the engine's Prometheus
#     /metrics on the host's loopback (requests running or queued, and a counter of finished requests).
#     The idle clock starts when the engine first answers; while it does not answer, nothing counts as a
#     request (an engine that died is idle).
# Ending means: stop the engine container, then run the shutdown command (power off a rented machine).
set -u

deadline_file=@@DEADLINE_FILE@@
deadline=@@FALLBACK_DEADLINE@@
budget_deadline=@@BUDGET_DEADLINE@@
idle_seconds=@@IDLE_SECONDS@@
metrics_port=@@METRICS_PORT@@
busy_metrics=@@BUSY_METRICS@@
request_metrics=@@REQUEST_METRICS@@
activity_file=@@ACTIVITY_FILE@@
container=@@CONTAINER_NAME@@
interval=@@INTERVAL_SECONDS@@
shutdown_command=@@SHUTDOWN_COMMAND@@

log() {
  printf '%s gpuctl-watchdog: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*"
}

# "BUSY REQUESTS" from the engine's /metrics (BUSY 1 when a request runs or waits), or nothing (status 1)
# when it does not answer with them. Plain bash: no curl or wget needed on the machine.
scrape() {
  # the inner script gets the port as $1: its expansions are meant for the inner bash
  # shellcheck disable=SC2016
  timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    cat <&3' scrape "$metrics_port" 2>/dev/null |
    awk -v busy=" $busy_metrics " -v requests=" $request_metrics " '
      { sub(/\r$/, "") }
      NR == 1 { if ($2 != "200") exit 1; next }
      !body { if ($0 == "") body = 1; next }
      /^#/ || !match($0, /^[a-zA-Z_:][a-zA-Z0-9_:]*/) { next }
      {
        name = substr($0, 1, RLENGTH)
        if (index(busy, " " name " ")) { running += $NF; found++ }
        if (index(requests, " " name " ")) { total += $NF; found++ }
      }
      END { if (!found) exit 1; printf "%d %.0f\n", (running > 0), total }'
}

finish() {
  log "$1: stopping $container and shutting down"
  docker stop --time 30 "$container" >/dev/null 2>&1 || log "could not stop $container"
  sh -c "$shutdown_command"
  exit 0
}

log "armed: deadline $deadline (file $deadline_file), budget deadline $budget_deadline, idle limit ${idle_seconds}s"
last_activity=""
last_requests=""
unreadable_logged=""
while :; do
  if [ -r "$deadline_file" ]; then
    value=""
    read -r value < "$deadline_file" || true
    case $value in
      '' | *[!0-9]*) log "ignoring deadline '$value' in $deadline_file; keeping $deadline" ;;
      *) deadline=$value ;;
    esac
  fi
  now=$(date +%s)
  if [ "$deadline" -gt 0 ] && [ "$now" -ge "$deadline" ]; then
    finish "deadline $deadline passed"
  fi
  if [ "$budget_deadline" -gt 0 ] && [ "$now" -ge "$budget_deadline" ]; then
    finish "budget spent at $budget_deadline"
  fi
  if [ "$idle_seconds" -gt 0 ]; then
    if reading=$(scrape); then
      busy=${reading% *}
      requests=${reading#* }
      if [ -z "$last_activity" ] || [ "$busy" != 0 ] || [ "$requests" != "$last_requests" ]; then
        [ -n "$last_activity" ] || log "engine metrics readable: idle clock started"
        last_activity=$now
        printf '%s\n' "$last_activity" > "$activity_file"
      fi
      last_requests=$requests
      unreadable_logged=""
    elif [ -z "$unreadable_logged" ]; then
      log "engine metrics not readable on port $metrics_port"
      unreadable_logged=1
    fi
    if [ -n "$last_activity" ] && [ $((now - last_activity)) -ge "$idle_seconds" ]; then
      finish "idle for $((now - last_activity))s (limit ${idle_seconds}s)"
    fi
  fi
  sleep "$interval"
done
