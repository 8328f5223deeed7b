"""The SRE agent's workspace: real git on temporary repositories; the live tree never changes."""

from __future__ import annotations

import os

import pytest

from sre.workspace import (
    EditRefused,
    PathRefused,
    code_search,
    file_read,
    path_resolve,
    scratch_create,
)
from tests.sre.conftest import API, git


def test_read_file_numbers_lines_and_honours_a_range(repo):
    text = file_read(repo, "app/api.py", start=5, end=6)
    assert text.splitlines() == [
        "    5 |     payload = json.loads(request.body)",
        '    6 |     profile = payload["user_profile"]',
    ]


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "/etc/passwd",
        "app/../../outside.txt",
        ".env",
        "deploy.pem",
        ".git/config",
    ],
)
def test_paths_outside_the_repository_or_to_secrets_are_refused(repo, path):
    with pytest.raises(PathRefused):
        file_read(repo, path)


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "\uff0e\uff0e/etc/passwd",
        "app\\..\\..\\x",
    ],
)
def test_encoded_traversal_is_never_decoded_into_a_way_out(repo, path):
    # Names are taken literally: an encoded "../" is an odd file name inside the root, not a
    # way out, and no such file exists.
    with pytest.raises(PathRefused):
        file_read(repo, path)
    assert str(path_resolve(repo, "app/" + path.replace("\\", "_"))).startswith(str(repo.resolve()))


def test_a_symlink_pointing_outside_is_refused(repo, tmp_path):
    (tmp_path / "outside.txt").write_text("not yours")
    os.symlink(tmp_path / "outside.txt", repo / "app" / "link.txt")
    with pytest.raises(PathRefused, match="outside"):
        file_read(repo, "app/link.txt")
    # A symlink that stays inside is fine.
    os.symlink(repo / "app" / "api.py", repo / "app" / "alias.py")
    assert path_resolve(repo, "app/alias.py") == (repo / "app" / "api.py").resolve()


def test_configured_deny_patterns_and_binary_files(repo):
    with pytest.raises(PathRefused, match="secrets"):
        file_read(repo, "app/api.py", deny=("app/api.py",))
    with pytest.raises(PathRefused, match="binary"):
        file_read(repo, "logo.png")


def test_a_large_file_needs_a_line_range(repo):
    (repo / "app" / "big.py").write_text("x = 1\n" * 10_000)
    with pytest.raises(PathRefused, match="line range"):
        file_read(repo, "app/big.py", max_bytes=1000)
    assert file_read(repo, "app/big.py", start=9999, end=10_000, max_bytes=1000).count("x = 1") == 2


def test_search_code_is_bounded_and_skips_secrets_and_untracked_files(repo):
    (repo / "app" / "notes.txt").write_text("user_profile in an untracked file\n")
    hits, cut = code_search(repo, "user_profile")
    assert [(h.path, h.line) for h in hits] == [("app/api.py", 6)] and not cut
    hits, cut = code_search(repo, r"return .* \* 2", regex=True, max_results=1)
    assert len(hits) == 1 and cut
    assert code_search(repo, "PRIVATE KEY")[0] == []  # deploy.pem is tracked but denied
    with pytest.raises(ValueError, match="invalid"):
        code_search(repo, "(", regex=True)


def test_edit_file_changes_only_the_scratch_copy(repo, tmp_path):
    live_before = (repo / "app" / "api.py").read_text()
    scratch = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-1")
    scratch.edit("app/api.py", 'payload["user_profile"]', 'payload.get("user_profile", {})')
    assert (repo / "app" / "api.py").read_text() == live_before
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    diff = scratch.diff()
    assert '-    profile = payload["user_profile"]' in diff
    assert '+    profile = payload.get("user_profile", {})' in diff
    checks = {c["name"]: c for c in scratch.checks(command="python -c 'import app.api'")}
    assert checks["patch applies to the live tree"]["passed"]
    assert checks["app/api.py compiles"]["passed"]
    assert checks["check: python -c 'import app.api'"]["passed"]


def test_edit_refuses_missing_and_ambiguous_matches(repo, tmp_path):
    scratch = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-2")
    with pytest.raises(EditRefused, match="does not occur"):
        scratch.edit("app/api.py", "payload['user_profile']", "x")
    with pytest.raises(EditRefused, match="occurs 2 times"):
        scratch.edit("app/util.py", "return x * 2", "return x + x")
    with pytest.raises(PathRefused):
        scratch.edit("../service/app/api.py", "import json", "import os")
    assert scratch.diff() == ""


def test_checks_report_a_syntax_error_and_a_failing_or_slow_command(repo, tmp_path):
    scratch = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-3")
    scratch.edit("app/util.py", "def twice(x):", "def twice(x:")
    checks = {c["name"]: c for c in scratch.checks(command="sleep 5", timeout=0.5)}
    assert checks["app/util.py compiles"]["passed"] is False
    assert "timed out" in checks["check: sleep 5"]["detail"]


def test_the_patch_no_longer_applying_to_the_live_tree_is_reported(repo, tmp_path):
    scratch = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-4")
    scratch.edit("app/api.py", 'payload["user_profile"]', 'payload.get("user_profile", {})')
    (repo / "app" / "api.py").write_text(API.replace("user_profile", "profile_v2"))
    checks = {c["name"]: c for c in scratch.checks()}
    assert checks["patch applies to the live tree"]["passed"] is False


def test_a_reused_scratch_copy_keeps_its_base_after_a_deploy(repo, tmp_path):
    scratch = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-9")
    base = scratch.commit
    scratch.edit("app/api.py", 'payload["user_profile"]', 'payload.get("user_profile", {})')
    (repo / "app" / "util.py").write_text("def twice(x):\n    return 2 * x\n")
    git(repo, "commit", "-qam", "deploy")  # the live tree moves on meanwhile
    again = scratch_create(source=repo, base_dir=tmp_path / "scratch", name="incident-9")
    assert again.commit == base
    assert again.changed_files() == ["app/api.py"]
