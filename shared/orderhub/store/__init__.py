"""DynamoDB access: the only place in the hub that builds DynamoDB requests."""
