"""Domain events: what the hub tells subscribers, and the port that publishes them."""
