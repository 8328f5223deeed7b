from django.apps import AppConfig


class ToolboxConfig(AppConfig):
    """A small warehouse domain the engine's tests drive, registered like a real domain."""

    name = "tests.toolbox"
    label = "toolbox"

    def ready(self) -> None:
        from tests.toolbox import tools

        tools.register()
