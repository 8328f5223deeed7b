"""Versioned system prompts, in the seed's frame: role, directives, scratchpad.

A prompt version is a template file registered once and never edited after a run used it;
a change is a new version. A run stores the name, the version and the rendered text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.template import Context, Engine


@dataclass(frozen=True)
class PromptVersion:
    name: str
    version: int
    template: str

    def render(self, context: dict[str, Any] | None = None) -> str:
        text = (
            _engine().get_template(self.template).render(Context(context or {}, autoescape=False))
        )
        return text.strip() + "\n"


class UnknownPrompt(LookupError):
    pass


_prompts: dict[str, dict[int, PromptVersion]] = {}


@cache
def _engine() -> Engine:
    # Prompts are plain text: no HTML escaping of the context.
    return Engine(
        dirs=[str(d) for d in settings.TEMPLATES[0]["DIRS"]],
        app_dirs=True,
        autoescape=False,
    )


def prompt_register(*, name: str, version: int, template: str) -> PromptVersion:
    prompt = PromptVersion(name=name, version=version, template=template)
    _prompts.setdefault(name, {})[version] = prompt
    return prompt


def prompt_get(*, name: str, version: int | None = None) -> PromptVersion:
    versions = _prompts.get(name)
    if not versions:
        raise UnknownPrompt(f"No prompt named {name!r} is registered.")
    if version is None:
        return versions[max(versions)]
    try:
        return versions[version]
    except KeyError:
        raise UnknownPrompt(f"Prompt {name!r} has no version {version}.") from None
