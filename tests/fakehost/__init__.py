"""A fake GPU host for tests: network namespace, sshd, dockerd, registry mirror, fake nvidia-smi."""
