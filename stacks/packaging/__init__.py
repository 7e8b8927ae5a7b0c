"""The Lambda code asset and dependency layers, built on this machine without Docker and
without CDK: plain functions that ``stacks.bundling`` (the CDK side) and
``scripts/build_bundles.py`` call.

- ``code_asset``: ``lambdas/`` and ``database/migrations/`` staged with the repository's layout.
- ``layers``: ``pip install --target`` of the versions pinned in ``uv.lock``, for the runtime's
  platform (or this machine's, for the cold-import benchmark).
- ``bytecode``: the runtime's ``.pyc`` files, when a CPython of its version is on this machine.
- ``base``: the build folder, the content hashes that key it, and running tools.
"""
