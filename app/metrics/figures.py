"""Figures the services keep in memory anyway (the fire gate's, the acknowledgement
batcher's, the arm audit's, the executor's), read when Prometheus scrapes: nothing is added
to their hot paths. The services are described by what is read of them, so this package
imports none of theirs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric


class GateFigures(Protocol):
    @property
    def shed(self) -> int: ...
    @property
    def working(self) -> int: ...
    @property
    def waiting(self) -> int: ...


class AckFigures(Protocol):
    @property
    def batches(self) -> int: ...
    @property
    def written(self) -> int: ...


class AuditCountFigures(Protocol):
    @property
    def audits(self) -> int: ...
    @property
    def checked(self) -> int: ...
    @property
    def repaired(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def list_errors(self) -> int: ...


class AuditFigures(Protocol):
    @property
    def counts(self) -> AuditCountFigures: ...
    @property
    def waiting(self) -> int: ...


class ExecutorFigures(Protocol):
    @property
    def outcomes_waiting(self) -> int: ...


class ServiceFigures:
    """A collector over the services' own counters (see the module docstring)."""

    def __init__(
        self,
        *,
        gate: GateFigures,
        acks: AckFigures,
        audit: AuditFigures,
        executor: ExecutorFigures,
    ) -> None:
        self.gate = gate
        self.acks = acks
        self.audit = audit
        self.executor = executor

    def describe(self) -> Iterable[Metric]:
        return list(self._families(describe_only=True))

    def collect(self) -> Iterable[Metric]:
        return list(self._families(describe_only=False))

    def _families(self, *, describe_only: bool) -> Iterator[Metric]:
        gate, acks, counts = self.gate, self.acks, self.audit.counts

        def counter(name: str, doc: str, value: int) -> Metric:
            family = CounterMetricFamily(name, doc)
            if not describe_only:
                family.add_metric([], value)
            return family

        def gauge(name: str, doc: str, value: int) -> Metric:
            family = GaugeMetricFamily(name, doc)
            if not describe_only:
                family.add_metric([], value)
            return family

        yield counter(
            "chronos_fires_shed", "Fires refused 503 overloaded before any work.", gate.shed
        )
        yield gauge("chronos_fires_working", "Fires past the fire gate now.", gate.working)
        yield gauge("chronos_fires_waiting", "Fires waiting for a turn now.", gate.waiting)
        yield counter(
            "chronos_outbox_ack_batches",
            "Transactions that wrote NAS acknowledgements.",
            acks.batches,
        )
        yield counter("chronos_outbox_acks", "NAS acknowledgements written.", acks.written)
        yield counter("chronos_arm_audits", "Arm audits that read NAS's list.", counts.audits)
        yield counter(
            "chronos_arm_audit_checked", "Jobs whose next arm an audit checked.", counts.checked
        )
        yield counter(
            "chronos_arm_audit_repaired", "Next arms an audit re-provisioned.", counts.repaired
        )
        yield counter("chronos_arm_audit_failures", "Arm audits that failed.", counts.failed)
        yield counter(
            "chronos_arm_audit_list_errors", "Arm audits whose NAS list failed.", counts.list_errors
        )
        yield gauge(
            "chronos_arm_audit_waiting", "Fired jobs waiting for an arm audit.", self.audit.waiting
        )
        yield gauge(
            "chronos_run_outcomes_waiting",
            "Runs that ended and whose outcome waits to be recorded in the store.",
            self.executor.outcomes_waiting,
        )
