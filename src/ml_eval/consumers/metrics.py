"""`ml-eval metrics`: a Prometheus exporter of the published marts (prometheus_client).

Every scrape reads, in one read-only transaction (so the rows are one publish's):

- `published.rpt_model_health`, per registered model: the champion's metrics, its version,
  the evaluated runs, the newest one's start (and its age, at scrape time), the failing gates;
- `published.rpt_quality_gates`, per model and gate: passing or not, value, threshold;
- `audit.ml_eval_test_results` (the history of checks), the latest invocation that ran tests:
  how many failed, errored or warned. A role that cannot read `audit` (the reporter) gets the
  marts' gauges without these.

Nothing is cached between scrapes: a scrape sees the last publish. The alert rules that use
these gauges ship in deploy/prometheus/alerts.yml.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ml_eval.warehouse import Warehouse

log = logging.getLogger(__name__)

PREFIX = "ml_eval"
AUDIT_SCHEMA = "audit"  # macros/publish/publish_state_schema.sql
MODEL_LABELS = ("workspace", "registered_model")
GATE_LABELS = (*MODEL_LABELS, "gate", "measure", "severity")


@dataclass(frozen=True)
class Sample:
    """One gauge value: name (without the prefix), help text, labels, value."""

    name: str
    documentation: str
    labels: dict[str, str]
    value: float


def _epoch(moment) -> float | None:
    return None if moment is None else moment.timestamp()


def read_samples(conn: psycopg.Connection, published_schema: str, now: float) -> list[Sample]:
    """Every gauge value the marts and the check history give now."""
    samples: list[Sample] = []
    health = conn.execute(
        sql.SQL("select * from {} order by workspace, registered_model_name").format(
            sql.Identifier(published_schema, "rpt_model_health")
        )
    )
    names = [column.name for column in health.description]
    for values in health.fetchall():
        row = dict(zip(names, values, strict=True))
        model = {"workspace": row["workspace"], "registered_model": row["registered_model_name"]}
        for column, value in row.items():
            metric = column.removeprefix("champion_")
            if column.startswith("champion_") and metric not in ("model_version", "run_uuid") and value is not None:
                samples.append(
                    Sample(
                        "champion_metric",
                        "The champion's metric (fct_run_evaluation), by registered model.",
                        {**model, "metric": metric},
                        float(value),
                    )
                )
        if row["champion_model_version"] is not None:
            samples.append(
                Sample(
                    "champion_version", "The version holding the champion alias.", model, row["champion_model_version"]
                )
            )
        samples.append(
            Sample("evaluated_runs", "Evaluated runs registered to the model.", model, row["n_evaluated_runs"])
        )
        newest = _epoch(row["newest_evaluated_run_at"])
        if newest is not None:
            samples.append(
                Sample(
                    "newest_evaluated_run_timestamp_seconds",
                    "When the newest evaluated run of the model started (Unix time).",
                    model,
                    newest,
                )
            )
            samples.append(
                Sample(
                    "newest_evaluated_run_age_seconds",
                    "Seconds since the newest evaluated run of the model started, at scrape time.",
                    model,
                    now - newest,
                )
            )
        samples.append(Sample("failing_gates", "The model's failing quality gates.", model, row["n_failing_gates"]))

    gates = conn.execute(
        sql.SQL(
            "select workspace, registered_model_name, gate, measure, severity, is_passing, observed_value, threshold"
            " from {} order by 1, 2, 3, 4"
        ).format(sql.Identifier(published_schema, "rpt_quality_gates"))
    )
    for workspace, model, gate, measure, severity, passing, observed, threshold in gates.fetchall():
        labels = {
            "workspace": workspace,
            "registered_model": model,
            "gate": gate,
            "measure": measure,
            "severity": severity,
        }
        samples.append(
            Sample("quality_gate_passing", "1 when the quality gate passes, else 0.", labels, float(passing))
        )
        if observed is not None:
            samples.append(Sample("quality_gate_value", "What the quality gate measured.", labels, float(observed)))
        if threshold is not None:
            samples.append(Sample("quality_gate_threshold", "The quality gate's threshold.", labels, float(threshold)))
    samples.extend(_check_samples(conn))
    return samples


def _check_samples(conn: psycopg.Connection) -> list[Sample]:
    """The latest invocation's test results from the history of checks, when readable."""
    table = sql.Identifier(AUDIT_SCHEMA, "ml_eval_test_results")
    readable = conn.execute(
        "select to_regclass(%s) is not null and has_table_privilege(to_regclass(%s), 'select')",
        (f"{AUDIT_SCHEMA}.ml_eval_test_results",) * 2,
    ).fetchone()[0]
    if not readable:
        return []
    rows = conn.execute(
        sql.SQL(
            "with latest as (select invocation_id, run_started_at from {table}"
            " order by run_started_at desc, recorded_at desc limit 1)"
            " select status, count(*), max(latest.run_started_at) from {table} join latest using (invocation_id)"
            " group by status"
        ).format(table=table)
    ).fetchall()
    counts = {status: count for status, count, _ in rows}
    samples = [
        Sample(
            "failing_tests",
            "Tests of the latest build that ran tests, by status (fail, error, warn).",
            {"status": status},
            float(counts.get(status, 0)),
        )
        for status in ("fail", "error", "warn")
    ]
    if rows:
        samples.append(
            Sample(
                "last_checks_timestamp_seconds", "When the latest build that ran tests started.", {}, _epoch(rows[0][2])
            )
        )
    return samples


class MartsCollector:
    """A prometheus_client collector that reads the published marts at every scrape."""

    def __init__(self, warehouse: Warehouse, published_schema: str):
        self.warehouse = warehouse
        self.published_schema = published_schema

    def describe(self) -> list:
        return []  # values are read at scrape time only, never at registration

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        success = 1.0
        try:
            with self.warehouse.connect(autocommit=True) as conn, conn.transaction():
                conn.execute("set transaction isolation level repeatable read, read only")
                samples = read_samples(conn, self.published_schema, time.time())
        except psycopg.Error as exc:
            log.warning("scrape failed: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
            samples, success = [], 0.0
        families: dict[str, GaugeMetricFamily] = {}
        for sample in samples:
            family = families.get(sample.name)
            if family is None:
                family = GaugeMetricFamily(f"{PREFIX}_{sample.name}", sample.documentation, labels=list(sample.labels))
                families[sample.name] = family
            family.add_metric(list(sample.labels.values()), sample.value)
        yield from families.values()
        up = GaugeMetricFamily(f"{PREFIX}_scrape_success", "1 when the marts could be read at this scrape, else 0.")
        up.add_metric([], success)
        yield up


def registry(warehouse: Warehouse, published_schema: str):
    from prometheus_client import CollectorRegistry

    collectors = CollectorRegistry(auto_describe=False)
    collectors.register(MartsCollector(warehouse, published_schema))
    return collectors


def exposition(warehouse: Warehouse, published_schema: str) -> str:
    """The metrics page once, as Prometheus would scrape it."""
    from prometheus_client import generate_latest

    return generate_latest(registry(warehouse, published_schema)).decode()


def serve(warehouse: Warehouse, published_schema: str, host: str, port: int, announce) -> None:
    """Serve /metrics on host:port (0: a free port) until interrupted."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host, registry=registry(warehouse, published_schema))
    announce(f"serving metrics on http://{host}:{server.server_port}/metrics")
    try:
        while thread.is_alive():
            thread.join(1.0)
    finally:
        server.shutdown()
