"""Extraction Watch: a streaming detector for large-scale data extraction through an AI API.

The data flow reads top to bottom in this package::

    codec      bytes -> RequestEvent | InvalidEvent          (contract enforcement)
    enrich     RequestEvent -> Enriched (account + network)  (reference data)
    features   Enriched -> per-account event-time windows    (1-minute buckets, 5-minute view)
    detect     window features -> Findings                   (river models)
    alerts     Findings -> Alert episodes                    (policy, stable ids)
    flow       the above, pure and deterministic, sharded by input partition
    app        the Faust worker: decode -> flow -> send, nothing else

Everything below ``app`` is plain Python over plain records: no wall clock, no Kafka.
"""

__version__ = "0.1.0"
