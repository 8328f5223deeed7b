from django.apps import AppConfig


class SreConfig(AppConfig):
    name = "sre"
    verbose_name = "SRE watchdog"

    def ready(self) -> None:
        from agents.schedules import schedule_register
        from sre import dashboard, tools

        tools.register()
        dashboard.register()
        schedule_register(
            name="sre: scan the log sources",
            func="sre.tasks.sre_scan_task",
            minutes_setting="SRE_SCAN_MINUTES",
        )
