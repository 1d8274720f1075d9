#!/bin/sh
# Debian/Ubuntu packages the fake GPU hosts of the test suite need (tests/fakehost). Run as root.
# --no-install-recommends keeps needrestart out; without man-db's trigger apt is about 5 s faster.
set -eu
rm -f /var/lib/man-db/auto-update
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  openssh-server openssh-client rsync docker.io docker-registry busybox-static iproute2
