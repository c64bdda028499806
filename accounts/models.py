"""The platform's users."""

from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """A person who chats with the platform's chatbots, or operates it."""

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
