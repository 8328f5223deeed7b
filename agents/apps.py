from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents and audit log"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from agents import groups, schedules
        from agents.dashboard.engine import engine_panels_register

        post_migrate.connect(groups.groups_sync, dispatch_uid="agents.groups_sync")
        engine_panels_register()
        schedules.schedule_register(
            name="agents: sweep runs and approvals",
            func="agents.tasks.agents_sweep_task",
            minutes_setting="AGENTS_SWEEP_MINUTES",
        )
        schedules.schedule_register(
            name="agents: submit and poll message batches",
            func="agents.tasks.batches_work_task",
            minutes_setting="AGENTS_BATCH_POLL_MINUTES",
        )
