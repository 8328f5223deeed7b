from __future__ import annotations

import itertools

from django.contrib.auth.models import Group, Permission, User

_numbers = itertools.count(1)


def user_create(*, perms: list[str] = (), staff: bool = True, groups: list[str] = ()) -> User:
    """A staff user holding exactly the given "app_label.codename" permissions."""
    user = User.objects.create_user(username=f"user{next(_numbers)}", password="pw", is_staff=staff)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return User.objects.get(pk=user.pk)  # fresh: no cached permissions
