"""Write side of the accounts app."""

from django.db import transaction

from accounts.models import User


@transaction.atomic
def demo_admin_ensure(*, username: str, password: str) -> tuple[User, bool]:
    """Create the demo superuser, or reset its password; return it and whether it was created."""
    user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    user.is_staff = True
    user.is_superuser = True
    user.is_active = True
    user.set_password(password)
    user.save()
    return user, created
