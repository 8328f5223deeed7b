"""The shop's account API."""

import json

from app.upstream import account_reply


def handler(request, user_id):
    """GET /api/users/<id>/profile: the accounts service's reply, reduced to a name."""
    payload = json.loads(account_reply(user_id))
    profile = payload["user_profile"]
    return {"name": profile["name"]}
