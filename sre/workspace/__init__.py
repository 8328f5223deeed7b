"""The SRE agent's view of the code: read, search and edit a scratch copy, never the live tree.

Every path Claude names is resolved (symlinks included) and must stay inside the repository
root; secret files are refused by name, settings modules when they hold a secret; the engine
masks what the tools return (agents/redaction.py) before Claude sees it.
"""

from sre.workspace.paths import PathRefused, path_resolve
from sre.workspace.publish import Published, PublishError, branch_publish
from sre.workspace.reading import code_search, file_read
from sre.workspace.scratch import EditRefused, ScratchCopy, scratch_create

__all__ = [
    "EditRefused",
    "PathRefused",
    "PublishError",
    "Published",
    "ScratchCopy",
    "branch_publish",
    "code_search",
    "file_read",
    "path_resolve",
    "scratch_create",
]
