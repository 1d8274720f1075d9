"""Provider plugins. Built-ins register through the same entry-point group a third party uses.

One package per built-in (``runpod/``, ``lambda_cloud/``, ``aws/``) plus ``ssh`` (your own host); what
they share sits beside them: the contract (``base``, ``capabilities``), catalogs (``catalog``), the
REST client (``http``), tags (``tagging``), VM-style helpers (``vm``), doctor checks (``checks``) and
the guard every provider is handed out through (``guard``). Nothing here imports ``gpuctl.deploy``
or ``gpuctl.cli`` (tests/test_layering.py).
"""
