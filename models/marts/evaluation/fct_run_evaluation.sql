-- One row per evaluated run: every metric computed from its predictions with
-- scikit-learn's semantics, beside the values MLflow logged and whether they agree.
-- A table rebuilt in full: it reads per-run summaries only (a few rows per run), and
-- names, tags and logged metrics may change in MLflow after a run is evaluated.
-- Coverage compares a run's predictions with its experiment's evaluation set (the most
-- predictions an evaluated run of the experiment holds): a run scored on a handful of
-- samples is marked rather than ranked among the others (rpt_model_leaderboard).

{#- The metrics compared with what MLflow logged: every key of var mlflow_metric_keys but
    f1_macro, which the producer logs (f1_score_macro) and the report reads, but this mart
    keeps no logged_ column of. -#}
{%- set compared_metrics = var('mlflow_metric_keys').keys() | reject('equalto', 'f1_macro') | list %}

with

runs as (
    select * from {{ ref('int_runs_evaluated') }}
),

run_details as (
    select * from {{ ref('stg_mlflow__runs') }}
),

experiments as (
    select * from {{ ref('stg_mlflow__experiments') }}
),

datasets as (
    select * from {{ ref('stg_dataset__datasets') }}
),

run_tags as (
    select * from {{ ref('stg_mlflow__run_tags') }}
),

latest_metrics as (
    select * from {{ ref('stg_mlflow__latest_metrics') }}
),

class_metrics as (
    select * from {{ ref('fct_class_metrics') }}
),

class_scores as (
    select * from {{ ref('int_run_class_scores_summarized') }}
),

-- Sums over the classes of each run; the confusion matrix holds everything they need.
class_summary as (
    select
        run_uuid,
        count(*) as n_classes,
        cast(sum(support) as bigint) as n_predictions,
        cast(sum(tp) as bigint) as n_correct,
        -- agreement expected by chance: sum over classes of predicted x actual counts
        sum(cast(tp + fp as {{ dbt.type_float() }}) * support) as chance_product_sum,
        sum(cast(tp + fp as {{ dbt.type_float() }}) * (tp + fp)) as predicted_square_sum,
        sum(cast(support as {{ dbt.type_float() }}) * support) as actual_square_sum,
        avg(precision) as precision_macro,
        avg(recall) as recall_macro,
        avg(f1) as f1_macro,
        avg(recall) filter (where support > 0) as balanced_accuracy,
        sum(precision * support) / sum(support) as precision_weighted,
        sum(recall * support) / sum(support) as recall_weighted,
        sum(f1 * support) / sum(support) as f1_weighted
    from class_metrics
    group by run_uuid
),

-- Per run, over its scored classes: ROC AUC as a macro average (with two classes
-- scikit-learn scores the greater label only, which is what a binary ROC AUC is), and the
-- log-loss terms of the predictions whose true class is scored.
score_summary as (
    select
        run_uuid,
        case
            when count(*) = 2 then max(roc_auc) filter (where score_class = max_class)
            when bool_and(roc_auc is not null) then avg(roc_auc)
        end as roc_auc,
        cast(sum(n_positive) as bigint) as n_scored_truths,
        sum(positive_log_loss_sum) as scored_log_loss_sum,
        sum(n_probability_sums_off) = 0 as probabilities_sum_to_one
    from (
        select
            *,
            max(score_class) over (partition by run_uuid) as max_class
        from class_scores
    ) as with_max
    group by run_uuid
),

-- every true class (a class with support) must be among the scored ones for ROC AUC to
-- be defined; the class metrics hold the true classes of every run
unscored_truths as (
    select distinct class_metrics.run_uuid
    from class_metrics
    left join class_scores
        on
            class_metrics.run_uuid = class_scores.run_uuid
            and class_metrics.class_label = class_scores.score_class
    where class_metrics.support > 0 and class_scores.score_class is null
),

-- the value MLflow logged for each compared metric, under the key var mlflow_metric_keys
-- names (shared with the producer); example_count is MLflow's evaluator's own name
logged as (
    select
        run_uuid,
        max(metric_value) filter (where metric_key = 'example_count') as logged_example_count,
        {% for metric in compared_metrics %}
            max(metric_value) filter (
                where metric_key = {{ sql_string(var('mlflow_metric_keys')[metric]) }}
            ) as logged_{{ metric }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from latest_metrics
    group by run_uuid
),

family_tags as (
    select
        run_uuid,
        tag_value as model_family
    from run_tags
    where tag_key = {{ sql_string(var('model_family_tag')) }}
),

metrics as (
    select
        runs.run_uuid,
        experiments.experiment_name,
        datasets.dataset_name,
        run_details.run_name,
        family_tags.model_family,
        run_details.started_at,
        run_details.ended_at,
        class_summary.n_predictions,
        -- a run's evaluation set: the most predictions any evaluated run of its experiment has
        -- on the same dataset
        max(class_summary.n_predictions)
            over (partition by runs.experiment_id, runs.dataset_id)
            as n_evaluation_samples,
        cast(class_summary.n_predictions as {{ dbt.type_float() }})
        / max(class_summary.n_predictions) over (partition by runs.experiment_id, runs.dataset_id) as coverage,
        class_summary.n_classes,
        cast(class_summary.n_correct as {{ dbt.type_float() }})
        / class_summary.n_predictions as accuracy,
        class_summary.balanced_accuracy,
        class_summary.precision_macro,
        class_summary.recall_macro,
        class_summary.f1_macro,
        class_summary.precision_weighted,
        class_summary.recall_weighted,
        class_summary.f1_weighted,
        -- Cohen's kappa: undefined (null) when chance agreement is perfect
        1 - (cast(class_summary.n_predictions - class_summary.n_correct as {{ dbt.type_float() }}))
        / nullif(
            class_summary.n_predictions
            - class_summary.chance_product_sum / class_summary.n_predictions,
            0
        ) as cohen_kappa,
        -- Matthews correlation: 0 when either marginal is constant, as scikit-learn
        coalesce(
            (
                cast(class_summary.n_correct as {{ dbt.type_float() }}) * class_summary.n_predictions
                - class_summary.chance_product_sum
            )
            / nullif(sqrt(
                (
                    cast(class_summary.n_predictions as {{ dbt.type_float() }}) * class_summary.n_predictions
                    - class_summary.predicted_square_sum
                )
                * (
                    cast(class_summary.n_predictions as {{ dbt.type_float() }}) * class_summary.n_predictions
                    - class_summary.actual_square_sum
                )
            ), 0),
            0
        ) as mcc,
        -- a true class without a stored probability scores 0, clipped to eps as scikit-learn
        (
            coalesce(score_summary.scored_log_loss_sum, 0)
            + (class_summary.n_predictions - coalesce(score_summary.n_scored_truths, 0))
            * -ln(cast(2.220446049250313e-16 as {{ dbt.type_float() }}))
        )
        / class_summary.n_predictions as log_loss,
        case when unscored_truths.run_uuid is null then score_summary.roc_auc end as roc_auc,
        score_summary.probabilities_sum_to_one,
        logged.logged_example_count,
        {% for metric in compared_metrics %}
            logged.logged_{{ metric }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from runs
    inner join run_details
        on runs.run_uuid = run_details.run_uuid
    left join experiments
        on runs.experiment_id = experiments.experiment_id
    left join datasets
        on runs.dataset_id = datasets.dataset_id
    left join family_tags
        on runs.run_uuid = family_tags.run_uuid
    inner join class_summary
        on runs.run_uuid = class_summary.run_uuid
    left join score_summary
        on runs.run_uuid = score_summary.run_uuid
    left join unscored_truths
        on runs.run_uuid = unscored_truths.run_uuid
    left join logged
        on runs.run_uuid = logged.run_uuid
),

final as (
    select
        *,
        -- null when MLflow logged none of these metrics for the run
        case
            when
                num_nonnulls(
                    logged_example_count,
                    {% for metric in compared_metrics %}
                        logged_{{ metric }}{% if not loop.last %},{% endif %}
                    {% endfor %}
                ) > 0
                then
                    {{ agrees_with_logged('n_predictions', 'logged_example_count') }}
                    {% for metric in compared_metrics %}
                        and {{ agrees_with_logged(metric, 'logged_' ~ metric) }}
                    {% endfor %}
        end as agrees_with_mlflow
    from metrics
)

select * from final
