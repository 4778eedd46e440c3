"""Trace-context header formats shared by the sidecar, the gateway and the demos (sans-IO).

`Propagator` (in `composite`) is the entry point: it reads W3C, B3 and Jaeger headers, baggage in
all its forms and `x-request-id` from any header carrier, and writes the configured formats back.
The format modules (`w3c`, `b3`, `jaeger`, `baggage`, `request_id`) hold one format each.
"""

from tracemesh.propagation.baggage import BaggageForm
from tracemesh.propagation.carrier import HEADERS, Getter, HeaderAccess, Setter
from tracemesh.propagation.composite import Extraction, Format, Propagator
from tracemesh.propagation.context import SamplingFlags, SpanContext

__all__ = [
    "HEADERS",
    "BaggageForm",
    "Extraction",
    "Format",
    "Getter",
    "HeaderAccess",
    "Propagator",
    "SamplingFlags",
    "Setter",
    "SpanContext",
]
