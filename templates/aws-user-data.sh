#!/bin/bash
# gpuctl AWS user data: runs once as root at first boot. The TTL watchdog is armed before anything
# else, so the instance powers off at the deadline (and, launched with
# InstanceInitiatedShutdownBehavior=terminate, is terminated) even if gpuctl never connects.
# No secret belongs here: every process on the instance can read user data from the metadata service.
set -euo pipefail
umask 077

config_dir=@@CONFIG_DIR@@
mkdir -p "$config_dir"
printf '%s\n' @@DEADLINE@@ > @@DEADLINE_FILE@@

cat > /usr/local/sbin/gpuctl-watchdog <<'GPUCTL_WATCHDOG_EOF'
@@WATCHDOG@@
GPUCTL_WATCHDOG_EOF
chmod 0700 /usr/local/sbin/gpuctl-watchdog
if command -v systemd-run >/dev/null 2>&1; then
  systemd-run --unit gpuctl-watchdog --description "gpuctl TTL watchdog" /usr/local/sbin/gpuctl-watchdog
else
  nohup setsid /usr/local/sbin/gpuctl-watchdog >> /var/log/gpuctl-watchdog.log 2>&1 < /dev/null &
fi

cat > /usr/local/sbin/gpuctl-bootstrap <<'GPUCTL_BOOTSTRAP_EOF'
@@BOOTSTRAP@@
GPUCTL_BOOTSTRAP_EOF
chmod 0700 /usr/local/sbin/gpuctl-bootstrap
/usr/local/sbin/gpuctl-bootstrap > /var/log/gpuctl-bootstrap.log 2>&1
