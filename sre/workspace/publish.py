"""Turning a scratch copy's edits into a branch, a commit and a push — each step once."""

from __future__ import annotations

from dataclasses import dataclass

from sre.workspace.scratch import ScratchCopy, git


class PublishError(Exception):
    """The branch could not be committed or pushed; the message says why."""


@dataclass(frozen=True)
class Published:
    branch: str
    commit: str
    committed: bool  # False when the branch already held the commit (a retry)
    pushed: bool  # False when the remote already had it, or there is no remote


def branch_publish(
    scratch: ScratchCopy,
    *,
    branch: str,
    message: str,
    remote_url: str = "",
    author: str = "Countersign <countersign@localhost>",
) -> Published:
    """Commit the scratch copy's changes on `branch` and push it; a retry repeats nothing."""
    existing = git(
        scratch.path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False
    )
    committed = False
    # A branch still at the base commit was made by a try that died before committing.
    if existing.strip() and existing.strip() != scratch.commit:
        commit = existing.strip()
    else:
        if not scratch.changed_files():
            raise PublishError("There are no changes to commit.")
        name, _, email = author.partition(" <")
        if existing.strip():
            git(scratch.path, "checkout", "--quiet", branch)  # the edits come along
        else:
            git(scratch.path, "checkout", "--quiet", "-b", branch)
        git(scratch.path, "add", "--all")
        git(
            scratch.path,
            "-c", f"user.name={name}",
            "-c", f"user.email={email.rstrip('>')}",
            "commit", "--quiet", "--no-verify", "-m", message,
        )  # fmt: skip
        commit = git(scratch.path, "rev-parse", "HEAD").strip()
        committed = True
    if not remote_url:
        return Published(branch, commit, committed, pushed=False)
    remote = git(scratch.path, "ls-remote", remote_url, f"refs/heads/{branch}", check=False)
    remote_commit = remote.split()[0] if remote.strip() else ""
    if remote_commit == commit:
        return Published(branch, commit, committed, pushed=False)
    if remote_commit:
        raise PublishError(
            f"The remote already has {branch} at {remote_commit[:12]}, not {commit[:12]}; "
            "it is never overwritten."
        )
    try:
        git(scratch.path, "push", "--quiet", remote_url, f"{commit}:refs/heads/{branch}")
    except RuntimeError as error:
        raise PublishError(str(error)) from error
    return Published(branch, commit, committed, pushed=True)
