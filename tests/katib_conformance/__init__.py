"""Katib's own tests and rules, ported: each case names the upstream file it comes from.

Upstream is kubeflow/katib (``test/unit/v1beta1/...`` for the ported tables, the service
sources for the cases derived from code that has no test table). A case we answer
differently on purpose is marked ``xfail(strict=True)`` with the reason, and listed under
"Differences from Katib" in docs/algorithms.md.
"""
