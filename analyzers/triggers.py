"""When jobs fire: APScheduler triggers from the configuration, and the fire times a window is tied to.

Interval schedules are aligned to the Unix epoch (``every: 1h`` fires on the hour), so windows line
up run after run and a restart knows exactly which fire times it missed.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from analyzers.config.models import Schedule

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TICK = timedelta(microseconds=1)
_LOOKBACKS = (timedelta(hours=2), timedelta(days=2), timedelta(days=32), timedelta(days=367))


def make_trigger(schedule: Schedule) -> BaseTrigger:
    """The trigger of a schedule: an epoch-aligned interval, or a cron expression (UTC)."""
    if schedule.every is not None:
        return IntervalTrigger(seconds=schedule.every.total_seconds(), start_date=EPOCH, timezone=timezone.utc)
    assert schedule.cron is not None
    fields = schedule.cron.split()
    if len(fields) != 5:
        raise ValueError(f"cron {schedule.cron!r}: expected 5 fields (minute hour day month day-of-week)")
    minute, hour, day, month, weekday = fields
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=_weekdays(weekday), timezone=timezone.utc
    )


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekdays(field: str) -> str:
    """Cron's day-of-week (0 or 7 = Sunday, names allowed) as APScheduler's, whose numbers start at Monday."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            low, _, high = span.partition("-")
            first = _day_number(low)
            last = _day_number(high) if high else (6 if step_text else first)
            if last < first and last == 0:  # "fri-sun": Sunday closes the week
                last = 7
            if last < first:
                raise ValueError(f"day of week {part!r}: the range runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _day_number(token: str) -> int:
    """0-7 (0 and 7 are Sunday) or a day name, as cron writes them."""
    if token.isdigit() and int(token) <= 7:
        return int(token)
    if token[:3] in _DAY_NAMES:
        return _DAY_NAMES.index(token[:3])
    raise ValueError(f"day of week {token!r}: expected 0-7 or a day name")


def fire_times(trigger: BaseTrigger, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The last ``limit`` fire times ``t`` with ``after < t <= until``, oldest first."""
    if limit <= 0 or until <= after:
        return []
    if isinstance(trigger, IntervalTrigger):
        step = trigger.interval
        last = EPOCH + ((until - EPOCH) // step) * step
        first = max(EPOCH + ((after - EPOCH) // step + 1) * step, last - (limit - 1) * step)
        out = []
        t = first
        while t <= last:
            out.append(t)
            t += step
        return out
    found: deque[datetime] = deque(maxlen=limit)
    t = trigger.get_next_fire_time(None, after + _TICK)
    while t is not None and t <= until:
        found.append(t)
        t = trigger.get_next_fire_time(t, t + _TICK)
    return list(found)


def latest_fire_time(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The most recent fire time at or before ``now``: the run a late start still stands for."""
    for lookback in _LOOKBACKS:
        times = fire_times(trigger, now - lookback, now, 1)
        if times:
            return times[0]
    return None
