"""pydantic v2 models at the hub's boundaries: canonical order, channel events, envelopes, domain events."""
