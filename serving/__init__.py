"""The scoring service: serves `@champion`, hot-swaps it, shadows and canaries `@challenger`.

Imports `registry` only (ARCHITECTURE): the model URI is always built from the configured
registered model, never taken from a request.
"""
