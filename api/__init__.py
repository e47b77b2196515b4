"""The katib service: FastAPI app with our REST API and Kubernetes-style endpoints."""

from ._app import create_app
from ._state import ServerLimits

__all__ = ["ServerLimits", "create_app"]
