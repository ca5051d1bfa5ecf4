"""The local runtime: moto as the embedded AWS, plus the part of the Lambda service moto does not play.

Entry point: `infra.local.runtime.LocalRuntime`. Never imported by shared/ or functions/:
nothing here ships to Lambda.
"""
