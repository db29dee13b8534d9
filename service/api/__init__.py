"""The REST API (FastAPI): routes under /v1, health at /healthz, OpenAPI at /docs."""
from service.api.app import create_app

__all__ = ["create_app"]
