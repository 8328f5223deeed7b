"""Which paths the agent may touch: inside the root after resolving symlinks, and no secrets."""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

# Files that hold secrets, by name; a project adds its own (SRE_DENY_PATHS). Settings modules
# are refused when they hold a secret (`settings_module`, checked by the readers).
DEFAULT_DENY = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    "*.jks",
    "*.gpg",
    "*.asc",
    "*.tfstate",
    "*.tfvars",
    "id_dsa*",
    "id_ecdsa*",
    ".htpasswd",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_ed25519*",
    "*.keystore",
    ".netrc",
    ".pgpass",
    "credentials*",
    "secrets.*",
    ".git",
)


class PathRefused(Exception):
    """The path is outside the repository or names a secret; nothing was read or written."""


def path_resolve(root: Path, path: str, *, deny: tuple[str, ...] = ()) -> Path:
    """The real file `path` names under `root`, or PathRefused saying why."""
    if not path or "\x00" in path:
        raise PathRefused("The path is empty or contains a NUL character.")
    root = root.resolve()
    relative = PurePosixPath(path.replace("\\", "/"))
    if relative.is_absolute():
        try:
            relative = PurePosixPath(Path(relative).resolve().relative_to(root))
        except ValueError:
            raise PathRefused(f"{path!r} is outside the repository.") from None
    target = (root / relative).resolve()
    try:
        inside = target.relative_to(root)
    except ValueError:
        raise PathRefused(f"{path!r} resolves outside the repository.") from None
    denied = path_denied(inside, deny=deny)
    if denied:
        raise PathRefused(f"{path!r} may hold secrets ({denied}); it is not shown to the agent.")
    return target


SETTINGS_MODULES = ("settings.py", "settings_*.py", "*_settings.py", "settings.*.py")


def settings_module(relative: Path | PurePosixPath) -> bool:
    """A Django-style settings module (`settings.py`, `config/settings/production.py`, ...)."""
    path = PurePosixPath(relative)
    if path.suffix != ".py":
        return False
    if any(fnmatch.fnmatchcase(path.name, p) for p in SETTINGS_MODULES):
        return True
    return "settings" in path.parts[:-1]


def path_denied(relative: Path | PurePosixPath, *, deny: tuple[str, ...] = ()) -> str:
    """The deny pattern a repository-relative path matches, or an empty string."""
    patterns = DEFAULT_DENY + tuple(deny)
    text = PurePosixPath(relative).as_posix()
    for part in PurePosixPath(relative).parts:
        for pattern in patterns:
            if fnmatch.fnmatchcase(part, pattern):
                return pattern
    for pattern in deny:
        if fnmatch.fnmatchcase(text, pattern):
            return pattern
    return ""
