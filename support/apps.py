from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support desk"

    def ready(self) -> None:
        from agents.schedules import schedule_register

        schedule_register(
            name="support: poll the IMAP mailbox",
            func="support.tasks.imap_poll_task",
            minutes_setting="IMAP_POLL_MINUTES",
        )
