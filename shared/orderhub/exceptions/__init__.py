"""Exceptions and SLAs (EXC-1..3): orders that need a person, who owns them, and by when.

- `model`: exception types, rules, states, the exception record and its id, SLA timers and
  their 5-minute slots, and the rules' configuration (`ExceptionRules`).
- `rules`: each detection rule on an order's facts: does it hold, since when, when is it due,
  and if not, why not (the note of an automatic resolution).
- `watchdog`: arming timers from domain events, and the scheduled run (fire due timers, raise,
  resolve what cleared, escalate what breached, alert owners and supervisors).
- `handling`: what an operator does through the API (list, acknowledge, resolve).
- `report`: count, time to resolve, SLA share, escalation and recurrence per type and month.
"""
