"""A small Django project for the WSGI tests: settings, views and URL patterns in one module."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path


class Boom(Exception):
    pass


def order_view(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(f"order {pk}")


def fail_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("down", status=502)


def boom_view(request: HttpRequest) -> HttpResponse:
    raise Boom


def stream_view(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"a", b"b"]))


urlpatterns = [
    path("orders/<int:pk>/", order_view),
    path("fail/", fail_view),
    path("boom/", boom_view),
    path("stream/", stream_view),
]


def application() -> Any:
    """Configure Django once (this module is the URLconf) and return its WSGI handler."""
    if not settings.configured:
        settings.configure(
            ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["localhost"],
            DEBUG=False,
            SECRET_KEY="test only",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            LOGGING_CONFIG=None,
        )
        django.setup()
    return get_wsgi_application()
