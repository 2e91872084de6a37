-- One row per promotion decision `ml-eval train` made (the tags under var promotion_tag_prefix
-- of a model version), with the rule applied again here from what it recorded: the promotion
-- rule of src/ml_eval/producer/promotion.py, in SQL. A test holds rule_decision = decision;
-- another holds the recorded paired counts and p-value equal to fct_run_comparisons' wherever
-- it compares the candidate with the same holder. Decisions recorded before the rule had a
-- beyond-chance condition have no max_p_value tag, and are decided without one.
{%- set prefix = var('promotion_tag_prefix') %}
{%- set fields = ['decision', 'reason', 'metric', 'margin', 'value', 'holder_version',
    'holder_run_id', 'holder_value', 'same_samples', 'decided_at', 'max_p_value', 'n_paired',
    'candidate_only_correct', 'holder_only_correct', 'p_value'] %}
{%- set directions = var('metric_directions') %}

with

version_tags as (
    select * from {{ ref('stg_mlflow__model_version_tags') }}
),

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

recorded as (
    select
        workspace,
        registered_model_name,
        model_version,
        {%- for field in fields %}
            max(tag_value) filter (where tag_key = {{ sql_string(prefix ~ field) }}) as recorded_{{ field }},
        {%- endfor %}
        count(*) as n_tags
    from version_tags
    group by workspace, registered_model_name, model_version
),

-- the recorded strings as values: '' is none, NaN is none (PostgreSQL sorts NaN above all)
typed as (
    select
        workspace,
        registered_model_name,
        cast(model_version as integer) as model_version,
        recorded_decision as decision,
        recorded_reason as reason,
        recorded_metric as promotion_metric,
        cast(recorded_margin as double precision) as margin,
        cast(nullif(lower(recorded_value), 'nan') as double precision) as candidate_value,
        cast(nullif(recorded_holder_version, '') as integer) as holder_model_version,
        nullif(recorded_holder_run_id, '') as holder_run_uuid,
        -- no value, as promotion.decide reads a NaN or an infinite one
        case
            when lower(recorded_holder_value) not in ('', 'nan', 'inf', '-inf', 'infinity', '-infinity')
                then cast(recorded_holder_value as double precision)
        end as holder_value,
        cast(nullif(recorded_same_samples, '') as boolean) as is_same_evaluation_samples,
        cast(recorded_decided_at as timestamp with time zone) as decided_at,
        cast(nullif(recorded_max_p_value, '') as double precision) as max_p_value,
        cast(nullif(recorded_n_paired, '') as bigint) as n_paired,
        cast(nullif(recorded_candidate_only_correct, '') as bigint) as n_candidate_only_correct,
        cast(nullif(recorded_holder_only_correct, '') as bigint) as n_holder_only_correct,
        cast(nullif(recorded_p_value, '') as double precision) as mcnemar_p_value,
        case recorded_metric
            {%- for metric, direction in directions.items() %}
                when {{ sql_string(metric) }} then {{ sql_string(direction) }}
            {%- endfor %}
        end as metric_direction
    from recorded
    where recorded_decision is not null
),

-- how much better the candidate was, rounded to 12 decimals as the producer rounds it, and
-- whether it was better beyond chance on the samples both predicted
gained as (
    select
        *,
        round(cast(
            case
                when metric_direction = 'lower' then holder_value - candidate_value
                else candidate_value - holder_value
            end as numeric
        ), 12) as gain,
        coalesce(
            n_paired is not null
            and n_candidate_only_correct > n_holder_only_correct
            and mcnemar_p_value < max_p_value,
            false
        ) as is_better_beyond_chance
    from typed
),

decided as (
    select
        *,
        case
            when holder_model_version is null then 'champion'
            when not is_same_evaluation_samples then 'challenger'
            when gain is null then 'challenger'
            when not gain > margin then 'challenger'
            when max_p_value is null then 'champion'
            when is_better_beyond_chance then 'champion'
            else 'challenger'
        end as rule_decision
    from gained
),

final as (
    select
        decided.workspace,
        decided.registered_model_name,
        decided.model_version,
        model_versions.run_uuid,
        decided.decided_at,
        decided.decision,
        decided.reason,
        decided.promotion_metric,
        decided.metric_direction,
        decided.margin,
        decided.candidate_value,
        decided.holder_model_version,
        decided.holder_run_uuid,
        decided.holder_value,
        decided.is_same_evaluation_samples,
        cast(decided.gain as double precision) as gain,
        decided.max_p_value,
        decided.n_paired,
        decided.n_candidate_only_correct,
        decided.n_holder_only_correct,
        decided.mcnemar_p_value,
        decided.is_better_beyond_chance,
        decided.rule_decision,
        decided.rule_decision = decided.decision as agrees_with_rule,
        -- the rule's metric as the marts compute it now, for the candidate and the holder
        case decided.promotion_metric
            {%- for metric in directions %}
                when {{ sql_string(metric) }} then candidate_evaluation.{{ metric }}
            {%- endfor %}
        end as candidate_value_now,
        case decided.promotion_metric
            {%- for metric in directions %}
                when {{ sql_string(metric) }} then holder_evaluation.{{ metric }}
            {%- endfor %}
        end as holder_value_now
    from decided
    left join model_versions
        on
            decided.workspace = model_versions.workspace
            and decided.registered_model_name = model_versions.registered_model_name
            and decided.model_version = model_versions.model_version
    left join evaluation as candidate_evaluation
        on model_versions.run_uuid = candidate_evaluation.run_uuid
    left join evaluation as holder_evaluation
        on decided.holder_run_uuid = holder_evaluation.run_uuid
)

select * from final
