"""Fingerprints: stable across line numbers, different across in-app frames, versioned."""

from __future__ import annotations

from sre.logs import fingerprint as fp
from sre.logs.tracebacks import parse_traceback


def tb(*frames: tuple[str, int, str, str], exc: str = "KeyError: 'user_profile'") -> str:
    lines = ["Traceback (most recent call last):"]
    for path, lineno, func, source in frames:
        lines += [f'  File "{path}", line {lineno}, in {func}', f"    {source}"]
        lines.append("    " + "^" * len(source))
    return "\n".join([*lines, exc])


DJANGO = (
    "/srv/shop/.venv/lib/python3.11/site-packages/django/core/handlers/base.py",
    197,
    "_get_response",
    "response = wrapped_callback(request)",
)
API = ("/srv/shop/shop/api.py", 8, "profile", 'profile = reply["user_profile"]')


def keys(text: str) -> fp.TracebackKeys:
    return fp.traceback_keys(parse_traceback(text.splitlines()))


def test_versioned_and_stable_across_line_numbers_and_whitespace():
    a = keys(tb(DJANGO, API))
    moved = keys(
        tb(
            (DJANGO[0], 230, DJANGO[2], DJANGO[3]),
            (API[0], 58, API[2], 'profile  =  reply["user_profile"]'),
        )
    )
    assert a.fingerprint == moved.fingerprint
    assert a.fingerprint.startswith(f"tb{fp.VERSION}:")
    assert a.culprit == "shop/api.py in profile"


def test_library_frames_and_their_versions_do_not_count():
    a = keys(tb(DJANGO, API))
    other_django = keys(
        tb(
            (
                "/usr/local/lib/python3.12/site-packages/django/core/handlers/base.py",
                181,
                "_get_response",
                "response = self.process(request)",
            ),
            ("<frozen importlib._bootstrap>", 1204, "_gcd_import", "x"),
            API,
        )
    )
    assert a.fingerprint == other_django.fingerprint


def test_different_in_app_frames_or_types_are_different_groups():
    base = keys(tb(DJANGO, API)).fingerprint
    assert (
        keys(
            tb(DJANGO, ("/srv/shop/shop/api.py", 8, "orders", 'profile = reply["user_profile"]'))
        ).fingerprint
        != base
    )
    assert (
        keys(
            tb(
                DJANGO,
                ("/srv/shop/shop/api.py", 8, "profile", 'profile = reply.get("user_profile")'),
            )
        ).fingerprint
        != base
    )
    assert keys(tb(DJANGO, ("/srv/shop/shop/views.py", 8, "profile", API[3]))).fingerprint != base
    assert (
        keys(tb(DJANGO, API, exc="TypeError: 'NoneType' object is not subscriptable")).fingerprint
        != base
    )


def test_the_message_is_not_part_of_the_fingerprint():
    assert (
        keys(tb(API, exc="KeyError: 'a'")).fingerprint
        == keys(tb(API, exc="KeyError: 'b'")).fingerprint
    )


def test_the_loose_key_ignores_source_lines_and_types_to_suggest_merges():
    a = keys(tb(DJANGO, API))
    b = keys(tb(DJANGO, (API[0], 9, API[2], "profile = reply['user_profile']"), exc="TypeError: x"))
    assert a.fingerprint != b.fingerprint and a.loose == b.loose


def test_recursion_is_collapsed():
    walk = ("/srv/shop/shop/tree.py", 4, "walk", "return walk(node.parent)")
    ping = ("/srv/shop/shop/tree.py", 9, "ping", "return pong(n)")
    pong = ("/srv/shop/shop/tree.py", 12, "pong", "return ping(n)")
    assert keys(tb(API, walk, walk, walk)).fingerprint == keys(tb(API, walk)).fingerprint
    cycle = [ping, pong] * 5
    assert keys(tb(API, *cycle)).fingerprint == keys(tb(API, ping, pong)).fingerprint


def test_chained_exceptions_are_part_of_it():
    single = tb(API)
    chained = (
        single
        + "\n\nThe above exception was the direct cause of the following exception:\n\n"
        + tb(DJANGO, exc="LookupError: no profile")
    )
    assert keys(single).fingerprint != keys(chained).fingerprint


def test_a_release_directory_in_the_path_does_not_change_it():
    a = keys(tb(("/srv/releases/20250314091500/shop/api.py",) + API[1:]))
    b = keys(tb(("/srv/releases/20250315120000/shop/api.py",) + API[1:]))
    assert a.fingerprint == b.fingerprint


def test_messages_are_normalised_before_grouping():
    a = fp.normalize_message(
        "Sync of order 1842 (0x7f3a2c1b) for ada@example.com failed: https://api.example.com/v1/o/1842 "
        "request 6f1c2e9a-0b7d-4c1f-8e6a-9b0c1d2e3f40 trace deadbeef1234"
    )
    assert a == "Sync of order <n> (<hex>) for <email> failed: <url> request <uuid> trace <hex>"
    assert fp.message_fingerprint("order 1 failed") == fp.message_fingerprint("order 22 failed")
    assert fp.message_fingerprint("order 1 failed") != fp.message_fingerprint("order 1 refunded")


def test_routes_replace_ids():
    assert fp.route_of("/api/users/42/profile?x=1") == "/api/users/<n>/profile"
    assert fp.route_of("/o/6f1c2e9a-0b7d-4c1f-8e6a-9b0c1d2e3f40/") == "/o/<uuid>/"
