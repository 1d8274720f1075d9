"""Deploying and undeploying: the ``gpuctl up`` state machine, teardown, status, and reconciling orphans.

Nothing here imports click or rich or prints: progress goes through :class:`gpuctl.events.Reporter`,
and every change to the state file goes through :mod:`gpuctl.deploy.records`.
"""
