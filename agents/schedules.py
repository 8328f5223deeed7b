"""Periodic tasks that apps declare in ready(); `manage.py setup_schedules` writes them."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    minutes_setting: str

    @property
    def minutes(self) -> int:
        return max(1, int(getattr(settings, self.minutes_setting)))


_schedules: dict[str, ScheduleSpec] = {}


def schedule_register(*, name: str, func: str, minutes_setting: str) -> ScheduleSpec:
    spec = ScheduleSpec(name=name, func=func, minutes_setting=minutes_setting)
    _schedules[name] = spec
    return spec


def schedule_list() -> list[ScheduleSpec]:
    return list(_schedules.values())


def schedules_sync() -> list[str]:
    """Create or update every declared schedule by name; running it twice changes nothing."""
    from django_q.models import Schedule

    lines = []
    for spec in schedule_list():
        _, created = Schedule.objects.update_or_create(
            name=spec.name,
            defaults={
                "func": spec.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": spec.minutes,
                "repeats": -1,
            },
        )
        lines.append(f"{'created' if created else 'updated'}: {spec.name} every {spec.minutes} min")
    return lines
