"""Manifests for infrastructure the user runs themselves (``gpuctl export``); nothing here talks to it.

Kubernetes (``export k8s``): the engine gpuctl would run, as objects to ``kubectl apply``.
"""
