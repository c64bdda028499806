"""URLs of the JSON chat API, included under /api/."""

from django.urls import path

from chatbot import api

app_name = api.API_NAMESPACE

urlpatterns = [
    path("csrf/", api.csrf_view, name="csrf"),
    path("login/", api.login_view, name="login"),
    path("logout/", api.logout_view, name="logout"),
    path("chatbots/", api.chatbots_view, name="chatbots"),
    path("sessions/", api.sessions_view, name="sessions"),
    path("sessions/<int:session_id>/", api.session_view, name="session"),
    path("sessions/<int:session_id>/messages/", api.messages_view, name="messages"),
]
