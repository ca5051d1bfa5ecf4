"""Delivering domain events to subscribers: signing, the HTTP call, outcome classes, backoff."""
