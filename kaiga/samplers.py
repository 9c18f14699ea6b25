"""Names of the samplers a request can ask for (no torch import: validating a request stays instant).

Example:
    >>> Sampler("euler-a").name
    'EULER_A'
"""

from enum import Enum


class Sampler(str, Enum):
    DDIM = "ddim"
    EULER = "euler"
    EULER_A = "euler-a"
    DPMPP_2M = "dpm++2m"
    LCM = "lcm"
