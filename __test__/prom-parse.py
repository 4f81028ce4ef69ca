"""Reads Prometheus text exposition on stdin with the official Python client's parser
(prometheus_client.parser, Debian's python3-prometheus-client; .ci/run installs it) and
prints its families as JSON: [{name, type, help, samples: [{name, labels, value}]}].
Malformed text makes the parser raise: exit status 1 with its message."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def value(v):
    return v if math.isfinite(v) else str(v)


families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": f.name,
        "type": f.type,
        "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": value(s.value)} for s in f.samples],
    })
json.dump(families, sys.stdout)
