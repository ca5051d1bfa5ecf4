"""The AWS realisation of the hub: a CDK app built from `infra/topology.py` and nothing else.

jsii (the bridge between this Python code and the CDK's JavaScript) prints a large banner on
every run when Node 20, which it considers end of life, is the Node on PATH. The variable must
be set before `aws_cdk` is first imported, which is why it is set here, where every import of
this package passes first.
"""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
