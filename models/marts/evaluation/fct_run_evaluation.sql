-- One row per evaluated run: every metric computed from its predictions with
-- scikit-learn's semantics, beside the values MLflow logged and whether they agree.
-- A table rebuilt in full: it reads per-run summaries only (a few rows per run), and
-- names, tags and logged metrics may change in MLflow after a run is evaluated.
-- Coverage compares a run's predictions with its experiment's evaluation set (the most
-- predictions an evaluated run of the experiment holds): a run scored on a handful of
-- samples is marked rather than ranked among the others (rpt_model_leaderboard).

{#- The metrics compared with what MLflow logged (macros/mlflow_names/): each -> the MLflow
    keys that may hold it, in order of preference (var mlflow_metric_names), and the computed
    column it is compared with. -#}
{%- set metric_names = mlflow_metric_names() %}
{%- set compared_columns = compared_metric_columns() %}
{%- set positive_class_names = key_list(var('mlflow_positive_class_names'), 'var mlflow_positive_class_names') %}
{%- set family_tags = run_tag_keys('model_family_tags', renamed_from='model_family_tag') %}
{#- the rows (metric, key, preference) of var mlflow_metric_names; one null row when it maps none -#}
{%- set metric_name_rows = [] %}
{%- for metric, keys in metric_names.items() %}
    {%- for key in keys %}
        {%- do metric_name_rows.append('(' ~ sql_string(metric) ~ ', ' ~ sql_string(key) ~ ', ' ~ loop.index ~ ')') %}
    {%- endfor %}
{%- endfor %}
{%- if not metric_name_rows %}
    {%- do metric_name_rows.append('(null, null, 0)') %}
{%- endif %}

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
        case
            when count(*) = 2 then max(average_precision) filter (where score_class = max_class)
            else avg(average_precision)
        end as average_precision_macro,
        cast(sum(n_positive) as bigint) as n_scored_truths,
        sum(positive_log_loss_sum) as scored_log_loss_sum,
        -- the squared errors of the scored classes: sum of p^2, less twice the true class's p,
        -- plus one per scored truth; halved with two classes, as brier_score_loss
        sum(probability_square_sum) - 2 * sum(positive_probability_sum) + sum(n_positive) as scored_brier_sum,
        count(*) < 3 as is_brier_halved,
        cast(sum(n_top_2) as bigint) as n_top_2,
        -- the run's, on each of its classes
        max(expected_calibration_error) as expected_calibration_error,
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

-- the MLflow keys of each compared metric, ranked by preference (var mlflow_metric_names)
metric_names as (
    select
        metric_name,
        metric_key,
        preference
    from (
        values
        {{ metric_name_rows | join(', ') }}
    ) as mapped (metric_name, metric_key, preference)
    where metric_key is not null
),

-- per run and compared metric, the first of its keys the run logged (a NaN counts: it was
-- logged); on a run of two classes the keys that hold the positive class's value there
-- (var mlflow_positive_class_names) are not read
logged_keys as (
    select
        run_uuid,
        metric_name,
        metric_key,
        metric_value
    from (
        select
            latest_metrics.run_uuid,
            metric_names.metric_name,
            metric_names.metric_key,
            latest_metrics.metric_value,
            row_number() over (
                partition by latest_metrics.run_uuid, metric_names.metric_name
                order by metric_names.preference
            ) as preference_rank
        from latest_metrics
        inner join metric_names
            on latest_metrics.metric_key = metric_names.metric_key
        {%- if positive_class_names %}
            left join class_summary
                on latest_metrics.run_uuid = class_summary.run_uuid
            where not (
                class_summary.n_classes = 2
                and metric_names.metric_key in (
                    {%- for key in positive_class_names %}
                        {{ sql_string(key) }}{% if not loop.last %},{% endif %}
                    {%- endfor %}
                )
            )
        {%- endif %}
    ) as ranked
    where preference_rank = 1
),

-- the value MLflow logged for each compared metric, under the key read for it
logged as (
    select
        run_uuid,
        {%- for metric in compared_columns %}
            max(metric_value) filter (where metric_name = {{ sql_string(metric) }}) as logged_{{ metric }},
        {%- endfor %}
        jsonb_object_agg(metric_name, metric_key order by metric_name) as compared_mlflow_keys
    from logged_keys
    group by run_uuid
),

family_tags as (
    select
        run_uuid,
        {{ first_tag_value(family_tags) }} as model_family
    from run_tags
    group by run_uuid
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
        -- null for a run that stored no probability; in a scored run, a true class outside the
        -- run's scored classes scores 0, clipped to eps as scikit-learn
        case
            when score_summary.run_uuid is not null
                then (
                    coalesce(score_summary.scored_log_loss_sum, 0)
                    + (class_summary.n_predictions - coalesce(score_summary.n_scored_truths, 0))
                    * -ln(cast(2.220446049250313e-16 as {{ dbt.type_float() }}))
                )
                / class_summary.n_predictions
        end as log_loss,
        case when unscored_truths.run_uuid is null then score_summary.roc_auc end as roc_auc,
        score_summary.average_precision_macro,
        -- an unscored true class has probability 0: a squared error of 1
        (
            score_summary.scored_brier_sum
            + (class_summary.n_predictions - score_summary.n_scored_truths)
        )
        / class_summary.n_predictions
        * case when score_summary.is_brier_halved then 0.5 else 1 end as brier_score,
        score_summary.expected_calibration_error,
        cast(score_summary.n_top_2 as {{ dbt.type_float() }}) / class_summary.n_predictions as top_2_accuracy,
        {{ wilson_bound('class_summary.n_correct', 'class_summary.n_predictions', 'low') }} as accuracy_ci_low,
        {{ wilson_bound('class_summary.n_correct', 'class_summary.n_predictions', 'high') }} as accuracy_ci_high,
        score_summary.probabilities_sum_to_one,
        {%- for metric in compared_columns %}
            logged.logged_{{ metric }},
        {%- endfor %}
        logged.compared_mlflow_keys
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

-- per run and compared metric, the computed value beside the one MLflow logged
comparisons as (
    select
        logged_keys.run_uuid,
        logged_keys.metric_name,
        case logged_keys.metric_name
            {%- for metric, column in compared_columns.items() %}
                when {{ sql_string(metric) }} then metrics.{{ column }}
            {%- endfor %}
        end as computed_value,
        logged_keys.metric_value as logged_value
    from logged_keys
    inner join metrics
        on logged_keys.run_uuid = metrics.run_uuid
),

-- a run is compared when MLflow logged a metric under a mapped key: the example count alone
-- says nothing of the metrics (it is not counted), but a wrong one still disagrees
agreement as (
    select
        run_uuid,
        count(*) filter (where metric_name <> 'example_count') as n_compared_metrics,
        bool_and({{ agrees_with_logged('computed_value', 'logged_value') }}) as all_agree
    from comparisons
    group by run_uuid
),

final as (
    select
        metrics.*,
        cast(coalesce(agreement.n_compared_metrics, 0) as integer) as n_compared_metrics,
        case
            when not agreement.all_agree then 'disagrees'
            when agreement.n_compared_metrics > 0 then 'agrees'
            else 'not compared'
        end as mlflow_agreement,
        case
            when not agreement.all_agree then false
            when agreement.n_compared_metrics > 0 then true
        end as agrees_with_mlflow
    from metrics
    left join agreement
        on metrics.run_uuid = agreement.run_uuid
)

select * from final
