"""Report pages of the admin that belong to no single model."""

from django.http import Http404, HttpRequest, HttpResponse


def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the usage dashboard."""
    raise Http404("The usage dashboard is being built.")
