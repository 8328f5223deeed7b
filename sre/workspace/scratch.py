"""A scratch copy of the repository at the deployed commit: the only tree the agent edits."""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sre.workspace.paths import path_resolve


class EditRefused(Exception):
    """The edit could not be made as asked (no match, several matches); nothing changed."""


def git(cwd: Path, *args: str, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()[:500]}")
    return result.stdout


@dataclass
class ScratchCopy:
    source: Path
    path: Path
    commit: str
    deny: tuple[str, ...] = ()
    edits: list[dict] = field(default_factory=list)

    def edit(self, path: str, search: str, replace: str) -> str:
        """Replace the one place `search` occurs in `path`; zero or several matches refuse."""
        target = path_resolve(self.path, path, deny=self.deny)
        if not target.is_file():
            raise EditRefused(f"{path!r} is not a file in the repository.")
        if not search:
            raise EditRefused("The text to search for is empty.")
        text = target.read_text(encoding="utf-8")
        count = text.count(search)
        if count == 0:
            raise EditRefused(
                f"The search text does not occur in {path!r}; read the file again and copy the "
                "lines exactly, whitespace included."
            )
        if count > 1:
            raise EditRefused(
                f"The search text occurs {count} times in {path!r}; include more surrounding "
                "lines so it matches once."
            )
        target.write_text(text.replace(search, replace, 1), encoding="utf-8")
        relative = target.relative_to(self.path.resolve()).as_posix()
        self.edits.append({"path": relative, "search": search, "replace": replace})
        return relative

    def diff(self) -> str:
        return git(self.path, "diff", "--no-color", "--no-ext-diff", self.commit)

    def changed_files(self) -> list[str]:
        return [p for p in git(self.path, "diff", "--name-only", self.commit).splitlines() if p]

    def checks(self, *, command: str = "", timeout: float = 120) -> list[dict]:
        """Does the patch apply to the live tree, does each changed Python file compile, and
        does the configured check command pass in the scratch copy."""
        results = []
        patch = self.diff()
        with tempfile.NamedTemporaryFile("w", suffix=".patch", delete=False) as handle:
            handle.write(patch)
        applies = subprocess.run(
            ["git", "-C", str(self.source), "apply", "--check", handle.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        Path(handle.name).unlink(missing_ok=True)
        results.append(
            {
                "name": "patch applies to the live tree",
                "passed": bool(patch) and applies.returncode == 0,
                "detail": "no changes" if not patch else (applies.stderr.strip() or "clean"),
            }
        )
        for relative in self.changed_files():
            if not relative.endswith(".py") or not (self.path / relative).exists():
                continue
            source = (self.path / relative).read_text(encoding="utf-8")
            try:
                compile(source, relative, "exec")
                results.append({"name": f"{relative} compiles", "passed": True, "detail": ""})
            except SyntaxError as error:
                results.append(
                    {"name": f"{relative} compiles", "passed": False, "detail": f"{error}"}
                )
        if command:
            try:
                run = subprocess.run(
                    shlex.split(command),
                    cwd=self.path,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
                output = (run.stdout + run.stderr)[-4000:]
                results.append(
                    {"name": f"check: {command}", "passed": run.returncode == 0, "detail": output}
                )
            except subprocess.TimeoutExpired:
                results.append(
                    {
                        "name": f"check: {command}",
                        "passed": False,
                        "detail": f"timed out after {timeout:g} s",
                    }
                )
            except OSError as error:
                results.append({"name": f"check: {command}", "passed": False, "detail": str(error)})
        return results


def scratch_create(
    *, source: Path, base_dir: Path, name: str, commit: str = "", deny: tuple[str, ...] = ()
) -> ScratchCopy:
    """Clone the repository at `commit` (default: its HEAD, the deployed code) into base_dir."""
    source = source.resolve()
    target = base_dir / name
    if target.exists():
        # Reused: keep the commit it was made at, even if the live tree was deployed since.
        base = git(target, "config", "--get", "countersign.base", check=False).strip()
        if base:
            return ScratchCopy(source=source, path=target, commit=base, deny=deny)
    commit = commit or git(source, "rev-parse", "HEAD").strip()
    base_dir.mkdir(parents=True, exist_ok=True)
    # --shared borrows the objects read-only: nothing is written into the live repository.
    subprocess.run(
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(source), str(target)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    git(target, "checkout", "--quiet", "--detach", commit)
    git(target, "config", "countersign.base", commit)
    return ScratchCopy(source=source, path=target, commit=commit, deny=deny)
