"""Canonical statuses, the convergent order state machine and the traceback."""
