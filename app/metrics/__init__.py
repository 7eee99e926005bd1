"""Prometheus metrics: the instruments (`Metrics`, one registry per app) and the collectors
read at scrape time (`ServiceFigures`, `StoreGaugeCollector`)."""

from app.metrics.figures import ServiceFigures
from app.metrics.registry import Metrics
from app.metrics.store_gauges import StoreGaugeCollector

__all__ = ["Metrics", "ServiceFigures", "StoreGaugeCollector"]
