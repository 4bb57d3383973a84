"""Prometheus metrics on a per-app registry (never the global one, so several apps can coexist).

:class:`api.observe.RequestObserver` counts every request. Requests are labelled by route
template (``/v1/records/{record_id}``, not the id) so the label set stays bounded; unknown paths
share ``<unmatched>`` and unknown methods ``OTHER``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import compile_path

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("caselink_http_requests_total", "HTTP requests by route template and status.",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("caselink_http_request_duration_seconds", "HTTP request latency by route template.",
                                 ["method", "route"], buckets=_BUCKETS, registry=r)
        self.index_records = Gauge("caselink_index_records", "Records in the live index.", registry=r)
        self.store_records = Gauge("caselink_store_records", "Stored records by kind.", ["kind"], registry=r)
        self.searches = Counter("caselink_search_total", "Searches by the path that answered.",
                                ["path", "fallback"], registry=r)
        self.feedback = Counter("caselink_feedback_total", "Feedback votes received.", ["helpful"], registry=r)

    def observe_search(self, path: str, fell_back: bool) -> None:
        self.searches.labels(path=path, fallback=str(fell_back).lower()).inc()

    def render(self, service=None) -> bytes:
        if service is not None:
            self.index_records.set(service.indexed())
            for kind, n in service.record_counts().items():
                self.store_records.labels(kind=kind).set(n)
        return generate_latest(self.registry)


class RouteTemplates:
    """Maps a request path to the template of the route it addresses ('/v1/records/{record_id}'),
    and to the methods that template answers (for ``Allow`` on a 405).

    Matched here rather than read from the router's scope entries, so requests answered before
    routing (413) are labelled too and nothing depends on framework internals. As in OpenAPI, a
    concrete path wins over a templated one: '/v1/feedback/export' is not '/v1/feedback/{feedback_id}'.
    """

    def __init__(self, templates: Mapping[str, Iterable[str]] | Iterable[str]) -> None:
        methods = templates if isinstance(templates, Mapping) else dict.fromkeys(templates, ())
        ordered = sorted(methods, key=lambda t: t.count("{"))  # stable: the given order among equals
        self._compiled = [(compile_path(t)[0], t) for t in ordered]
        self._methods = {t: frozenset(m.upper() for m in ms) for t, ms in methods.items()}

    def __call__(self, path: str) -> str:
        for regex, template in self._compiled:
            if regex.match(path):
                return template
        return "<unmatched>"

    def allowed(self, path: str) -> list[str]:
        """The methods of every route at ``path``'s most concrete template, sorted; [] when none matches."""
        matched = [t for regex, t in self._compiled if regex.match(path)]
        if not matched:
            return []
        fewest = matched[0].count("{")
        return sorted({m for t in matched if t.count("{") == fewest for m in self._methods[t]})
