"""Promotion you can trust, alias history, quality gates, the history of checks, Prometheus.

One database for the module, one flow (`flow`): train a good model (champion), build, train a
worse one (challenger: the alias stays), start the exporter and a real Prometheus (Debian's
/usr/bin/prometheus, its own config and data directory, 127.0.0.1, a 1 s scrape and evaluation
interval) loading the shipped alert rules, then inject a regression (the champion alias moved
by hand to the worse version, bypassing the rule), build again, and read Prometheus' alerts.
Every number is recomputed here with scikit-learn from the stored predictions.

A second database (`chance`) holds the beyond-chance condition of the default rule: the
baseline, then a model that beats it beyond chance (champion), then one better still on macro
F1 by three samples of 54 (not beyond chance: challenger), and one build; the paired counts
are recounted here from the stored predictions and the p-value is SciPy's.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import pytest
from scipy.stats import binomtest
from sklearn import metrics as skm

from conftest import CONFIG, ML_EVAL, PROJECT_DIR, drop_database, run_ml_eval
from ml_eval import warehouse as wh
from ml_eval.dbt import run_dbt
from ml_eval.producer import promotion
from ml_eval.producer.candidates import default_candidates
from ml_eval.producer.train import Settings, train

MODEL = "wine-classifier"
PREFIX = "ml_eval.promotion."
PROMETHEUS = os.environ.get("ML_EVAL_PROMETHEUS") or "/usr/bin/prometheus"
GOOD, WORSE = "logreg-c0.1", "baseline-most-frequent"
# the chance flow: knn-5 gets 51 of the 54 test samples right, gboost-50x0.3-depth2 all 54
BASELINE, DECENT, BETTER_BY_NOISE = "baseline-most-frequent", "knn-5", "gboost-50x0.3-depth2"


def rows(database: wh.Warehouse, query: str, params: tuple = ()) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(query, params).fetchall()


def macro_f1(database: wh.Warehouse, run_uuid: str) -> float:
    """scikit-learn's macro F1 of a run, from its stored predictions and the targets."""
    pairs = rows(
        database,
        "select t.class, p.class from dataset.predictions as p join dataset.targets as t"
        " on t.sample_index = p.sample_index where p.run_uuid = %s order by p.prediction_index",
        (run_uuid,),
    )
    return float(skm.f1_score([a for a, _ in pairs], [b for _, b in pairs], average="macro", zero_division=0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def firing(prometheus_url: str, name: str) -> list[dict]:
    alerts = get_json(f"{prometheus_url}/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


@dataclass
class Flow:
    database: wh.Warehouse
    good: object  # TrainResult
    worse: object
    build_output: str  # the second build's (after the regression)
    firing_before: dict[str, list]
    firing_after: list[dict]
    scraped_before: str
    scraped_after: str


@pytest.fixture(scope="module")
def flow(tmp_path_factory) -> Flow:
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.fail(f"{PROMETHEUS} is missing: run `make setup-prometheus` (as root) or set ML_EVAL_PROMETHEUS")
    prefix = os.environ.get("ML_EVAL_TEST_DATABASE_PREFIX") or "ml_eval_pytest"
    database = wh.resolve(CONFIG).with_database(f"{prefix}_promotion_{os.getpid()}")
    wh.ensure_database(database, fresh=True)
    processes: list[subprocess.Popen] = []
    try:
        run_dbt(["seed"], database, CONFIG)
        by_name = {candidate.name: candidate for candidate in default_candidates()}
        settings = Settings.from_config(CONFIG)
        good = train(database, settings, [by_name[GOOD]], report=lambda line: None)
        run_ml_eval("build", "--no-docs", env=database.env())
        worse = train(database, settings, [by_name[WORSE]], report=lambda line: None)

        # the exporter and Prometheus, before the regression
        exporter = subprocess.Popen(
            [*ML_EVAL, "metrics", "--port", "0"],
            cwd=PROJECT_DIR,
            env={**os.environ, **database.env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        processes.append(exporter)
        announced = exporter.stdout.readline().strip()
        assert announced.startswith("serving metrics on http://127.0.0.1:"), announced
        metrics_url = announced.removeprefix("serving metrics on ")
        target = metrics_url.removeprefix("http://").removesuffix("/metrics")
        workdir = tmp_path_factory.mktemp("prometheus")
        (workdir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{json.dumps(str(PROJECT_DIR / 'deploy' / 'prometheus' / 'alerts.yml'))}]\n"
            "scrape_configs:\n"
            f"  - {{job_name: ml-eval, static_configs: [{{targets: [{json.dumps(target)}]}}]}}\n"
        )
        port = free_port()
        prometheus_url = f"http://127.0.0.1:{port}"
        processes.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=open(workdir / "prometheus.log", "w"),  # noqa: SIM115 (closed with the process)
            )
        )
        wait_for(
            lambda: get_json(f"{prometheus_url}/api/v1/query?query=ml_eval_scrape_success")["data"]["result"],
            90,
            "Prometheus to scrape the exporter",
        )
        wait_for(lambda: get_json(f"{prometheus_url}/api/v1/rules")["data"]["groups"], 30, "the alert rules to load")
        time.sleep(3)  # a few evaluations of the rules on the scraped gauges
        names = ("MlEvalChampionRegression", "MlEvalMetricBelowFloor", "MlEvalFailingGates")
        firing_before = {name: firing(prometheus_url, name) for name in names}
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            scraped_before = response.read().decode()

        # the regression: the champion alias moved by hand to the worse version, then a build
        import mlflow

        uri = database.sqlalchemy_url(CONFIG.mlflow_schema)
        mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
            MODEL, "champion", worse.champion.version
        )
        built = run_ml_eval("build", "--no-docs", env=database.env())
        firing_after = wait_for(
            lambda: firing(prometheus_url, "MlEvalChampionRegression"), 60, "MlEvalChampionRegression to fire"
        )
        with urllib.request.urlopen(metrics_url, timeout=10) as response:
            scraped_after = response.read().decode()
        yield Flow(
            database,
            good,
            worse,
            built.stdout + built.stderr,
            firing_before,
            firing_after,
            scraped_before,
            scraped_after,
        )
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        drop_database(database)


@dataclass
class Chance:
    database: wh.Warehouse
    results: list  # TrainResult of BASELINE, DECENT, BETTER_BY_NOISE, in that order
    build_output: str


@pytest.fixture(scope="module")
def chance() -> Chance:
    prefix = os.environ.get("ML_EVAL_TEST_DATABASE_PREFIX") or "ml_eval_pytest"
    database = wh.resolve(CONFIG).with_database(f"{prefix}_chance_{os.getpid()}")
    wh.ensure_database(database, fresh=True)
    try:
        run_dbt(["seed"], database, CONFIG)
        by_name = {candidate.name: candidate for candidate in default_candidates()}
        settings = Settings.from_config(CONFIG)  # the default rule: beyond chance at 0.05
        results = [
            train(database, settings, [by_name[name]], report=lambda line: None)
            for name in (BASELINE, DECENT, BETTER_BY_NOISE)
        ]
        built = run_ml_eval("build", "--no-docs", env=database.env())
        yield Chance(database, results, built.stdout + built.stderr)
    finally:
        drop_database(database)


def paired_counts(database: wh.Warehouse, run: str, holder_run: str) -> tuple[int, int, int]:
    """(pairs, only the run right, only the holder right), recounted in Python."""
    target = dict(rows(database, "select sample_index, class from dataset.targets"))
    predicted = {
        uuid: dict(rows(database, "select sample_index, class from dataset.predictions where run_uuid = %s", (uuid,)))
        for uuid in (run, holder_run)
    }
    shared = predicted[run].keys() & predicted[holder_run].keys()
    b = sum(predicted[run][i] == target[i] != predicted[holder_run][i] for i in shared)
    c = sum(predicted[holder_run][i] == target[i] != predicted[run][i] for i in shared)
    return len(shared), b, c


# --- the rule itself (no database) ------------------------------------------------------


RULE = promotion.Rule.from_vars(CONFIG.vars)


def holder(value: float | None, same: bool = True, b: int = 10, c: int = 0) -> promotion.Holder:
    return promotion.Holder("3", "r" * 32, value, same, promotion.Paired(54, b, c) if same else None)


@pytest.mark.parametrize(
    ("metric", "margin", "candidate", "held", "same", "expected"),
    [
        ("f1_macro", 0.0, 0.9, None, True, "champion"),  # no holder
        ("f1_macro", 0.0, 0.9, 0.9, True, "challenger"),  # a tie never moves the alias
        ("f1_macro", 0.0, 0.9 + 1e-14, 0.9, True, "challenger"),  # floating-point noise is a tie
        ("f1_macro", 0.0, 0.9 + 1e-11, 0.9, True, "champion"),
        ("f1_macro", 0.05, 0.95, 0.9, True, "challenger"),  # better by exactly the margin: not more
        ("f1_macro", 0.05, 0.9501, 0.9, True, "champion"),
        ("f1_macro", 0.0, 1.0, 0.5, False, "challenger"),  # other samples: not comparable
        ("f1_macro", 0.0, 1.0, float("nan"), True, "challenger"),  # the holder logged no value
        ("log_loss", 0.0, 0.1, 0.2, True, "champion"),  # lower is better
        ("log_loss", 0.0, 0.3, 0.2, True, "challenger"),
        ("f1_macro", 0.0, float("nan"), 0.5, True, "challenger"),
    ],
)
def test_the_rule_on_its_edges(metric, margin, candidate, held, same, expected):
    rule = promotion.Rule.from_vars({**CONFIG.vars, "promotion_rule": {"metric": metric, "margin": margin}})
    decision = promotion.decide(rule, candidate, None if held is None else holder(held, same))
    assert decision.decision == expected, decision.reason


@pytest.mark.parametrize(
    ("max_p_value", "candidate", "held", "b", "c", "expected"),
    [
        (0.05, 0.95, 0.9, 6, 0, "champion"),  # p = 2 / 2^6 = 0.03125
        (0.05, 0.95, 0.9, 5, 0, "challenger"),  # p = 0.0625
        (0.0625, 0.95, 0.9, 5, 0, "challenger"),  # p exactly at the level: not below it
        (0.0625 + 1e-12, 0.95, 0.9, 5, 0, "champion"),
        (0.05, 0.95, 0.9, 0, 6, "challenger"),  # beyond chance, but the other way round
        (0.05, 0.95, 0.9, 0, 0, "challenger"),  # no discordant pair: p = 1
        (0.05, 0.9, 0.9, 40, 0, "challenger"),  # a tie on the metric, however small p is
        (1.0, 0.95, 0.9, 3, 1, "champion"),  # level 1: b > c with p < 1 (3 and 1: p = 0.625)
        (1.0, 0.95, 0.9, 2, 1, "challenger"),  # 2 and 1: p = 1, not below even level 1
        (None, 0.95, 0.9, 0, 6, "champion"),  # off: the margin alone
    ],
)
def test_beyond_chance_on_its_edges(max_p_value, candidate, held, b, c, expected):
    rule = promotion.Rule.from_vars(
        {**CONFIG.vars, "promotion_rule": {"metric": "f1_macro", "margin": 0, "max_p_value": max_p_value}}
    )
    decision = promotion.decide(rule, candidate, holder(held, b=b, c=c))
    assert decision.decision == expected, decision.reason
    # the exact two-sided test in closed form, independently of SciPy: 2 * P(X <= min(b, c))
    n = b + c
    expected_p = min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n) if n else 1.0
    assert promotion.Paired(54, b, c).p_value == pytest.approx(expected_p, rel=1e-12)


def test_the_default_rule_requires_beyond_chance_at_the_comparisons_level():
    rule = promotion.Rule.from_config(CONFIG)
    assert rule.max_p_value == CONFIG.var("comparison_alpha") == 0.05
    # a promotion_rule of a project's own replaces the whole var: omitting the level keeps it
    own = {**CONFIG.vars, "promotion_rule": {"metric": "accuracy", "margin": 0.01}}
    assert promotion.Rule.from_vars(own).max_p_value == 0.05
    off = {**CONFIG.vars, "promotion_rule": {"metric": "accuracy", "margin": 0.01, "max_p_value": None}}
    assert promotion.Rule.from_vars(off).max_p_value is None


def test_the_producer_decides_the_sql_unit_test_cases_alike():
    """The cases of the SQL copy's unit test (models/marts/registry/_registry__unit_tests.yml),
    decided by the producer's copy: both give the same decision on every one."""
    import csv
    import io

    import yaml

    document = yaml.safe_load((PROJECT_DIR / "models/marts/registry/_registry__unit_tests.yml").read_text())
    (case,) = [test for test in document["unit_tests"] if test["name"] == "promotion_rule_edges"]
    (tags,) = [given["rows"] for given in case["given"] if "model_version_tags" in given["input"]]
    recorded: dict[int, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(tags)):
        recorded.setdefault(int(row["model_version"]), {})[row["tag_key"].removeprefix(PREFIX)] = row["tag_value"]
    expected = {row["model_version"]: row["rule_decision"] for row in case["expect"]["rows"]}
    assert sorted(recorded) == sorted(expected) and len(expected) >= 15
    assert sum("max_p_value" in values for values in recorded.values()) >= 5
    for version, values in recorded.items():
        level = float(values["max_p_value"]) if values.get("max_p_value") else None
        rule = promotion.Rule.from_vars(
            {
                **CONFIG.vars,
                "promotion_rule": {"metric": values["metric"], "margin": float(values["margin"]), "max_p_value": level},
            }
        )
        held = None
        if values["holder_version"]:
            value = float(values["holder_value"]) if values["holder_value"] else None
            paired = None
            if values.get("n_paired"):
                paired = promotion.Paired(
                    int(values["n_paired"]), int(values["candidate_only_correct"]), int(values["holder_only_correct"])
                )
                assert paired.p_value == pytest.approx(float(values["p_value"]), rel=1e-12), version
            held = promotion.Holder(
                values["holder_version"], values["holder_run_id"], value, values["same_samples"] == "true", paired
            )
        decision = promotion.decide(rule, float(values["value"]), held)
        assert decision.decision == expected[version] == values["decision"], (version, decision.reason)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"metric": "f1_micro", "margin": 0}, "dbt var promotion_rule.metric is 'f1_micro': use one of var"),
        ({"metric": "f1_macro", "margin": -0.1}, "dbt var promotion_rule.margin is -0.1: use a number >= 0"),
        ({"metric": "f1_macro", "margin": "a lot"}, "dbt var promotion_rule.margin is 'a lot'"),
        ({"metric": "f1_macro", "max_p_value": 0}, "dbt var promotion_rule.max_p_value is 0: use a number in (0, 1]"),
        ({"metric": "f1_macro", "max_p_value": 1.5}, "dbt var promotion_rule.max_p_value is 1.5"),
        ({"metric": "f1_macro", "max_p_value": "5%"}, "dbt var promotion_rule.max_p_value is '5%'"),
        ({"metric": "f1_macro", "max_p_value": True}, "dbt var promotion_rule.max_p_value is True"),
    ],
)
def test_a_bad_rule_is_refused_in_one_line(rule, message):
    with pytest.raises(Exception, match=message.replace("(", r"\(")) as raised:
        promotion.Rule.from_vars({**CONFIG.vars, "promotion_rule": rule})
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("command", ["train", "demo"])
def test_a_bad_rule_creates_no_database(project_copy, command):
    """Refused before the warehouse database is made: one line, exit 2, no database."""
    path = project_copy / "dbt_project.yml"
    text = path.read_text()
    assert "    max_p_value: 0.05\n" in text
    path.write_text(text.replace("    max_p_value: 0.05\n", '    max_p_value: "0.05\'; drop table x; --"\n'))
    name = f"h_bad_rule_{command}_{os.getpid()}"
    done = run_ml_eval(command, "--project-dir", str(project_copy), "--database", name, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        'ml-eval: error: dbt var promotion_rule.max_p_value is "0.05\'; drop table x; --": use a number in (0, 1],'
        " or null for no beyond-chance condition"
    ]
    with wh.resolve(CONFIG).connect("postgres") as conn:
        assert conn.execute("select count(*) from pg_database where datname = %s", (name,)).fetchone() == (0,)


# --- the flow ---------------------------------------------------------------------------


def test_a_worse_batch_leaves_the_champion_alias_and_gets_challenger(flow):
    good, worse = flow.good, flow.worse
    assert good.decision.decision == "champion" and worse.decision.decision == "challenger"
    good_f1 = macro_f1(flow.database, good.champion.run_id)
    worse_f1 = macro_f1(flow.database, worse.champion.run_id)
    assert worse_f1 < good_f1
    assert worse.champion.metrics["f1_macro"] == pytest.approx(worse_f1, abs=1e-9)
    # before the hand-made regression, the rule had left champion on the good version
    assert "ml_eval_champion_version" in flow.scraped_before
    assert (
        f'ml_eval_champion_version{{registered_model="{MODEL}",workspace="default"}} {float(good.champion.version)}'
        in (flow.scraped_before)
    )


def test_the_decision_is_an_mlflow_tag_of_the_version(flow):
    tags = dict(
        rows(
            flow.database,
            "select key, value from mlflow.model_version_tags where name = %s and version = %s and key like %s",
            (MODEL, int(flow.worse.champion.version), PREFIX + "%"),
        )
    )
    good_f1 = macro_f1(flow.database, flow.good.champion.run_id)
    worse_f1 = macro_f1(flow.database, flow.worse.champion.run_id)
    assert tags[PREFIX + "decision"] == "challenger"
    assert tags[PREFIX + "metric"] == "f1_macro" and float(tags[PREFIX + "margin"]) == 0.0
    assert tags[PREFIX + "holder_version"] == str(flow.good.champion.version)
    assert tags[PREFIX + "holder_run_id"] == flow.good.champion.run_id
    assert tags[PREFIX + "same_samples"] == "true"
    assert float(tags[PREFIX + "value"]) == pytest.approx(worse_f1, abs=1e-9)
    assert float(tags[PREFIX + "holder_value"]) == pytest.approx(good_f1, abs=1e-9)
    assert "not better by more than 0" in tags[PREFIX + "reason"]
    aliases = dict(
        rows(flow.database, "select alias, version from mlflow.registered_model_aliases where name = %s", (MODEL,))
    )
    assert aliases["challenger"] == int(flow.worse.champion.version)


def test_the_decisions_are_in_the_mart_and_follow_the_rule_in_sql(flow):
    decisions = rows(
        flow.database,
        "select model_version, run_uuid, decision, rule_decision, agrees_with_rule, holder_model_version,"
        " candidate_value, holder_value, candidate_value_now, gain from published.fct_promotion_decisions"
        " where registered_model_name = %s order by model_version",
        (MODEL,),
    )
    good_f1 = macro_f1(flow.database, flow.good.champion.run_id)
    worse_f1 = macro_f1(flow.database, flow.worse.champion.run_id)
    (first, second) = decisions
    assert first[:6] == (int(flow.good.champion.version), flow.good.champion.run_id, "champion", "champion", True, None)
    assert second[:6] == (
        int(flow.worse.champion.version), flow.worse.champion.run_id, "challenger", "challenger", True,
        int(flow.good.champion.version),
    )  # fmt: skip
    assert second[6] == pytest.approx(worse_f1, abs=1e-9) and second[7] == pytest.approx(good_f1, abs=1e-9)
    assert second[8] == pytest.approx(worse_f1, abs=1e-9)
    assert second[9] == pytest.approx(round(worse_f1 - good_f1, 12), abs=1e-9)


def test_the_snapshot_shows_every_holder_of_champion_over_time(flow):
    history = rows(
        flow.database,
        "select model_version, valid_from, valid_to, is_current, promotion_decision from published.fct_alias_history"
        " where registered_model_name = %s and alias = 'champion' order by valid_from",
        (MODEL,),
    )
    assert [row[0] for row in history] == [int(flow.good.champion.version), int(flow.worse.champion.version)]
    (first, second) = history
    assert first[2] is not None and not first[3] and first[2] <= second[1]
    assert second[2] is None and second[3]
    snapshot = rows(
        flow.database,
        "select model_version from audit.snap_registered_model_aliases"
        " where registered_model_name = %s and alias = 'champion' order by dbt_valid_from",
        (MODEL,),
    )
    assert snapshot == [(int(flow.good.champion.version),), (int(flow.worse.champion.version),)]


def test_failing_gates_are_named_in_one_line_each_and_measured(flow):
    good_f1 = macro_f1(flow.database, flow.good.champion.run_id)
    worse_f1 = macro_f1(flow.database, flow.worse.champion.run_id)
    lines = [line for line in flow.build_output.splitlines() if "quality gate " in line and "FAILS" in line]
    assert any(
        f"quality gate champion_regression (warn) for {MODEL}: champion v{flow.worse.champion.version}" in line
        for line in lines
    ), lines
    assert any(f"quality gate metric_floor (warn) for {MODEL}:" in line for line in lines), lines
    gates = {
        (gate, measure): (passing, value)
        for gate, measure, passing, value in rows(
            flow.database,
            "select gate, measure, is_passing, observed_value from published.rpt_quality_gates"
            " where registered_model_name = %s",
            (MODEL,),
        )
    }
    assert gates[("champion_regression", "f1_macro")][0] is False
    assert gates[("champion_regression", "f1_macro")][1] == pytest.approx(good_f1 - worse_f1, abs=1e-9)
    assert gates[("metric_floor", "f1_macro")] == (False, pytest.approx(worse_f1, abs=1e-9))
    assert gates[("run_freshness", "run_age_hours")][0] is True


def test_every_build_keeps_its_test_results(flow):
    builds = rows(
        flow.database,
        "select invocation_id, count(*), count(*) filter (where status = 'pass'),"
        " max(failures) filter (where test_name = 'assert_quality_gates_pass_warn'),"
        " max(status) filter (where test_name = 'assert_quality_gates_pass_warn')"
        " from audit.ml_eval_test_results group by invocation_id, run_started_at order by run_started_at",
    )
    assert len(builds) == 2  # the two builds (dbt seed runs no test)
    (first, second) = builds
    assert first[3:] == (0, "pass")
    assert second[3:] == (2, "warn")  # the regression and the floor
    assert first[1] == second[1] and first[1] > 100


def test_prometheus_fires_the_regression_alert(flow):
    assert flow.firing_before == {
        "MlEvalChampionRegression": [],
        "MlEvalMetricBelowFloor": [],
        "MlEvalFailingGates": [],
    }
    (alert,) = flow.firing_after
    assert alert["labels"]["registered_model"] == MODEL and alert["labels"]["measure"] == "f1_macro"
    worse_f1 = macro_f1(flow.database, flow.worse.champion.run_id)
    line = f'ml_eval_champion_metric{{metric="f1_macro",registered_model="{MODEL}",workspace="default"}} '
    (scraped,) = [row for row in flow.scraped_after.splitlines() if row.startswith(line)]
    assert float(scraped.removeprefix(line)) == pytest.approx(worse_f1, abs=1e-9)
    assert 'ml_eval_failing_tests{status="warn"} 1.0' in flow.scraped_after


def test_the_exporter_refuses_a_missing_database_in_one_line():
    done = run_ml_eval("metrics", "--once", "--database", "h_no_such_database_promotion", check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "h_no_such_database_promotion" in done.stderr


# --- beyond chance ----------------------------------------------------------------------


def test_a_gain_beyond_chance_takes_champion_and_one_by_noise_does_not(chance):
    _, decent, noisy = chance.results
    assert [r.decision.decision for r in chance.results] == ["champion", "champion", "challenger"]
    # the noisy one is better on the rule's metric: only the paired test keeps it out
    assert macro_f1(chance.database, noisy.champion.run_id) > macro_f1(chance.database, decent.champion.run_id)
    assert "but not beyond chance at 0.05" in noisy.decision.reason
    assert "and beyond chance" in decent.decision.reason
    aliases = dict(
        rows(chance.database, "select alias, version from mlflow.registered_model_aliases where name = %s", (MODEL,))
    )
    assert aliases == {"champion": int(decent.champion.version), "challenger": int(noisy.champion.version)}


def test_the_paired_comparison_is_recorded_and_recounted(chance):
    baseline, decent, noisy = chance.results
    for candidate, held in ((decent, baseline), (noisy, decent)):
        tags = dict(
            rows(
                chance.database,
                "select key, value from mlflow.model_version_tags where name = %s and version = %s and key like %s",
                (MODEL, int(candidate.champion.version), PREFIX + "%"),
            )
        )
        n, b, c = paired_counts(chance.database, candidate.champion.run_id, held.champion.run_id)
        assert n == 54
        assert (tags[PREFIX + "n_paired"], tags[PREFIX + "candidate_only_correct"]) == (str(n), str(b))
        assert tags[PREFIX + "holder_only_correct"] == str(c)
        assert float(tags[PREFIX + "p_value"]) == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-12)
        assert float(tags[PREFIX + "max_p_value"]) == 0.05
    assert paired_counts(chance.database, noisy.champion.run_id, decent.champion.run_id) == (54, 3, 0)


def test_the_mart_decides_beyond_chance_and_matches_the_comparisons(chance):
    decisions = rows(
        chance.database,
        "select model_version, decision, rule_decision, max_p_value, n_candidate_only_correct,"
        " n_holder_only_correct, mcnemar_p_value, is_better_beyond_chance from published.fct_promotion_decisions"
        " where registered_model_name = %s order by model_version",
        (MODEL,),
    )
    baseline, decent, noisy = chance.results
    assert [row[:3] for row in decisions] == [
        (int(baseline.champion.version), "champion", "champion"),
        (int(decent.champion.version), "champion", "champion"),
        (int(noisy.champion.version), "challenger", "challenger"),
    ]
    assert decisions[0][3:] == (0.05, None, None, None, False)
    assert decisions[2][3:6] == (0.05, 3, 0) and decisions[2][7] is False
    assert decisions[2][6] == pytest.approx(binomtest(3, 3, 0.5).pvalue, rel=1e-12)  # 0.25
    assert decisions[1][7] is True
    # the comparison mart compares the challenger with the champion it was judged against, so
    # assert_promotion_comparisons_match_the_marts had a row to check, and it passed
    (compared,) = rows(
        chance.database,
        "select n_run_only_correct, n_reference_only_correct, mcnemar_p_value from published.fct_run_comparisons"
        " where run_uuid = %s and reference_run_uuid = %s",
        (noisy.champion.run_id, decent.champion.run_id),
    )
    assert compared[:2] == (3, 0) and compared[2] == pytest.approx(0.25, rel=1e-9)
    (status,) = rows(
        chance.database,
        "select status from audit.ml_eval_test_results"
        " where test_name = 'assert_promotion_comparisons_match_the_marts'",
    )
    assert status == ("pass",)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
