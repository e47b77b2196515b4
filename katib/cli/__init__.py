"""The ``katib`` command line: validate, run, resume, stop, get, describe, logs, delete,
server, ui, serve, export, suggestion, user.

``app`` is the Typer application and ``main`` the console script (``katib.cli:main``).
Each module below adds its commands to ``app`` when imported; they are imported here in
the order ``katib --help`` lists them. None imports the store, the executors or the loop
at module level: ``katib validate`` stays light (tests/test_cli_light.py).
  _app        the apps, consoles, shared options and helpers; ``main``
  _executors  ``--executor NAME`` → the executor factory
  _run        validate, run, resume
  _stop       stop (here, or through a katib server)
  _server     server, ui, suggestion serve
  _read       get, describe, logs, delete
  _source     where those read: the store here or a katib server (--server)
  _serving    serve, export inferenceservice
  _users      user add/token/tokens/revoke/remove/grant/ungrant/list
"""

# Importing a module adds its commands; `katib --help` lists them in this order.
from katib.cli import _run, _stop, _server, _read, _serving, _users  # noqa: F401, I001
from katib.cli._app import app, main

__all__ = ["app", "main"]
