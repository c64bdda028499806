"""Report pages that belong to no single model: the usage dashboard and the exports."""

from django.contrib import admin
from django.urls import path

from reports import exports, views

app_name = "reports"

urlpatterns = [
    path("dashboard/", admin.site.admin_view(views.dashboard), name="dashboard"),
    path("export/<slug:report_key>.<slug:export_format>", admin.site.admin_view(exports.report_export), name="export"),
]
