"""Reading what the in-memory OpenTelemetry exporters captured."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from httpmgr import HttpClientManager


@dataclass
class Telemetry:
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)

    def __post_init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, manager: HttpClientManager, **options: Any) -> None:
        """Record ``manager``'s telemetry here (``options`` as for ``instrument()``)."""
        from httpmgr.telemetry import instrument

        instrument(
            manager,
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            **options,
        )

    def points(self, name: str, **attrs: Any) -> list[Any]:
        """Data points of metric ``name`` whose attributes include ``attrs``."""
        data = self.reader.get_metrics_data()
        found = []
        for rm in data.resource_metrics if data else []:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        point_attrs = point.attributes or {}
                        if all(point_attrs.get(k) == v for k, v in attrs.items()):
                            found.append(point)
        return found

    def value(self, name: str, **attrs: Any) -> float:
        """Sum of counter values (or histogram counts) matching ``attrs``."""
        total = 0.0
        for point in self.points(name, **attrs):
            total += point.count if hasattr(point, "bucket_counts") else point.value
        return total

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans.get_finished_spans()
            if name is None or s.name == name or s.name.startswith(name + " ")
        ]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
