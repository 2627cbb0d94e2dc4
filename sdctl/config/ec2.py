"""What an EC2 instance type's name says about it, without asking EC2.

The architecture: "Instance type naming conventions" in the Amazon EC2 instance types guide
(docs.aws.amazon.com/ec2/latest/instancetypes/instance-type-names.html) lists the additional
capabilities written after the generation digit, and ``g`` there is "AWS Graviton
processors" (arm64): t4g, m7g, c7gn, r8g, im4gn, is4gen, g5g. ``a1``, the first Graviton
family, predates the letter. Every other family is x86_64. tests/test_aws_rules.py checks
this against every instance type moto's EC2 catalogue lists with its SupportedArchitectures.
"""

from __future__ import annotations

import re

_GRAVITON = re.compile(r"[a-z]+\d+g[a-z]*")


def architecture(instance_type: str) -> str:
    """``arm64`` or ``x86_64`` for a type such as ``t4g.nano`` or ``g5.xlarge``."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if family == "a1" or _GRAVITON.fullmatch(family) else "x86_64"
