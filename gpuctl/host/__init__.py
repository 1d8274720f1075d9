"""Reaching a GPU host: SSH sessions (paramiko), docker on a remote or local engine, host checks, health.

Nothing here imports click or rich, and paramiko, docker and httpx are imported inside the functions
that need them, so ``gpuctl --help`` never pays for them.
"""
