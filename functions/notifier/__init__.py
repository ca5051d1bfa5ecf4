"""Alert delivery: throttled, counted alerts to WeCom / DingTalk robots and the alarm topic."""
