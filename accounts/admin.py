"""Admin for users, with who spends what above the list."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from reports.admin import ReportsAdminMixin


@admin.register(User)
class UserAdmin(ReportsAdminMixin, DjangoUserAdmin):
    report_keys = ("top_users_by_cost", "top_users_by_free_usage", "average_tokens_per_request")
