import pytest
from django.contrib import admin

from accounts.models import User
from chatbot.models import ChatMessage, ChatSession, OpenRouterRequestCost
from core.admin import QuickActionCheckboxMixin
from core.factories import ChatMessageFactory, RequestCostFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("model", "make"),
    [
        (OpenRouterRequestCost, lambda: RequestCostFactory(generation_id="gen-<b>\"&'")),
        (ChatMessage, ChatMessageFactory),
        (ChatSession, lambda: ChatMessageFactory().session),
    ],
)
def test_the_quick_checkbox_is_the_html_django_renders(model, make):
    model_admin = admin.site._registry[model]
    assert isinstance(model_admin, QuickActionCheckboxMixin)
    obj = make()

    quick = model_admin.action_checkbox(obj)

    # Django's own rendering through the CheckboxInput widget, escaping included.
    assert quick == admin.ModelAdmin.action_checkbox(model_admin, obj)
    assert 'class="action-select"' in quick and f'value="{obj.pk}"' in quick


def test_the_user_admin_keeps_a_working_checkbox(admin_client):
    user = User.objects.create_user(username="ann")

    content = admin_client.get("/admin/accounts/user/").content.decode()

    assert f'name="_selected_action" value="{user.pk}" class="action-select"' in content
