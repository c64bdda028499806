"""Map URLs to the admin and the chat API."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    # Before admin.site.urls, whose catch-all would otherwise answer these with a 404.
    path("admin/reports/", include("reports.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("chatbot.urls")),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
