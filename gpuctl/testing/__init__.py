"""Tools for testing provider plugins: ``ProviderContract``, the contract as a pytest test class.

It needs pytest (a test dependency of your plugin, never of gpuctl at run time).
"""

from gpuctl.testing.contract import ProviderContract

__all__ = ["ProviderContract"]
