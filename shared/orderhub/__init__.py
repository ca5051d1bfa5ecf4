"""orderhub: the domain package every Lambda function imports."""
