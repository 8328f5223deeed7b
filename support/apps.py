from django.apps import AppConfig


class SupportConfig(AppConfig):
    name = "support"
    verbose_name = "Support desk"

    def ready(self) -> None:
        from agents.context_processors import live_part_register
        from agents.schedules import schedule_register
        from support import dashboard, tools
        from support.payments import gateway_label

        tools.register()
        dashboard.register()
        live_part_register(gateway_label)
        schedule_register(
            name="support: poll the IMAP mailbox",
            func="support.tasks.imap_poll_task",
            minutes_setting="IMAP_POLL_MINUTES",
        )
