"""The katib service: FastAPI app with our REST API and Kubernetes-style endpoints."""

from ._app import create_app

__all__ = ["create_app"]
