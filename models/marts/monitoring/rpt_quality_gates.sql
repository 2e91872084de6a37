-- One row per registered model and quality gate (var quality_gates): whether the gate passes
-- now, with the value it measured, its threshold, its severity and a one-line message. The
-- tests assert_quality_gates_pass_{warn,error} fail the build, by severity, on failing rows.
{%- set gates = var('quality_gates') %}
{%- set directions = var('metric_directions') %}
{%- set rule_metric = var('promotion_rule')['metric'] %}
{%- set configs = [] %}
{%- set default = gates.get('default') or {} %}
{%- do configs.append((none, default)) %}
{%- for name, own in (gates.get('models') or {}).items() %}
    {%- set merged = {} %}
    {%- do merged.update(default) %}
    {%- do merged.update(own or {}) %}
    {%- do configs.append((name, merged)) %}
{%- endfor %}
{%- for name, config in configs %}
    {%- if config.get('severity', 'warn') not in ('warn', 'error') %}
        {{ exceptions.raise_compiler_error('var quality_gates: severity of ' ~ (name or 'default') ~ ' is ' ~ config.get('severity') ~ ': use warn or error') }}
    {%- endif %}
    {%- for metric in (config.get('metric_floors') or {}) if metric not in directions %}
        {{ exceptions.raise_compiler_error('var quality_gates: metric floor ' ~ metric ~ ' of ' ~ (name or 'default') ~ ' is not one of var metric_directions') }}
    {%- endfor %}
{%- endfor %}

{#- a metric's column chosen by name: `{measure}` and `{alias}` are filled in below -#}
{%- set whens = [] %}
{%- for metric in directions %}
    {%- do whens.append('when ' ~ sql_string(metric) ~ ' then {alias}.' ~ metric) %}
{%- endfor %}
{%- set metric_value = 'case {measure} ' ~ (whens | join(' ')) ~ ' end' %}
{%- set run_age_seconds = dbt.datediff('newest_evaluated_run_at', 'current_timestamp', 'second') %}
{%- set champion_value = metric_value | replace('{measure}', 'model_gates.measure')
    | replace('{alias}', 'champion_evaluation') %}
{%- set holder_value = metric_value | replace('{measure}', 'model_gates.measure')
    | replace('{alias}', 'holder_evaluation') %}

with

model_versions as (
    select * from {{ ref('dim_model_versions') }}
),

evaluation as (
    select * from {{ ref('fct_run_evaluation') }}
),

runs as (
    select * from {{ ref('dim_runs') }}
),

alias_history as (
    select * from {{ ref('fct_alias_history') }}
),

-- the gates as configured: a row per gate of `default` (registered_model_name null) and of
-- each model named under `models` (its keys over the default's)
configured as (
    {%- set settings = [] %}
    {%- for name, config in configs %}
        {%- set model = sql_string(name) if name is not none else 'null' %}
        {%- set severity = sql_string(config.get('severity', 'warn')) %}
        {%- for metric, floor in (config.get('metric_floors') or {}).items() %}
            {%- do settings.append([model, "'metric_floor'", sql_string(metric), floor, severity]) %}
        {%- endfor %}
        {%- if config.get('max_champion_regression') is not none %}
            {%- do settings.append([model, "'champion_regression'", sql_string(rule_metric),
                config['max_champion_regression'], severity]) %}
        {%- endif %}
        {%- if config.get('max_run_age_hours') is not none %}
            {%- do settings.append([model, "'run_freshness'", "'run_age_hours'",
                config['max_run_age_hours'], severity]) %}
        {%- endif %}
    {%- endfor %}
    select
        registered_model_name,
        gate,
        measure,
        threshold,
        severity
    from (
        values
        {%- for row in settings %}
            ({{ row | join(', ') }}),
        {%- endfor %}
        -- the last row gives the types; it is no gate
        (
            cast(null as varchar), cast(null as varchar), cast(null as varchar),
            cast(null as double precision), cast(null as varchar)
        )
    ) as gate_settings (registered_model_name, gate, measure, threshold, severity)
    where gate is not null
),

registered_models as (
    select distinct
        workspace,
        registered_model_name
    from model_versions
),

-- a model named under `models` takes its own gates, every other one the default's
model_gates as (
    select
        registered_models.workspace,
        registered_models.registered_model_name,
        configured.gate,
        configured.measure,
        configured.threshold,
        configured.severity,
        case configured.measure
            {%- for metric, direction in directions.items() %}
                when {{ sql_string(metric) }} then {{ sql_string(direction) }}
            {%- endfor %}
        end as direction
    from registered_models
    inner join configured
        on
            registered_models.registered_model_name = configured.registered_model_name
            or (
                configured.registered_model_name is null
                and registered_models.registered_model_name not in (
                    select named.registered_model_name
                    from configured as named
                    where named.registered_model_name is not null
                )
            )
),

-- each model's champion and its evaluation
champions as (
    select
        model_versions.workspace,
        model_versions.registered_model_name,
        model_versions.model_version,
        model_versions.run_uuid,
        runs.dataset_id
    from model_versions
    left join runs
        on model_versions.run_uuid = runs.run_uuid
    where model_versions.is_champion
),

-- earlier holders of the champion alias (alias history), on the champion's dataset
earlier_holders as (
    select distinct
        champions.workspace,
        champions.registered_model_name,
        alias_history.model_version,
        alias_history.run_uuid
    from champions
    inner join alias_history
        on
            champions.workspace = alias_history.workspace
            and champions.registered_model_name = alias_history.registered_model_name
            and alias_history.alias = {{ sql_string(var('champion_alias')) }}
            and champions.model_version <> alias_history.model_version
    inner join runs
        on
            alias_history.run_uuid = runs.run_uuid
            and champions.dataset_id = runs.dataset_id
),

newest_runs as (
    select
        model_versions.workspace,
        model_versions.registered_model_name,
        max(evaluation.started_at) as newest_evaluated_run_at
    from model_versions
    inner join evaluation
        on model_versions.run_uuid = evaluation.run_uuid
    group by model_versions.workspace, model_versions.registered_model_name
),

measured as (
    select
        model_gates.*,
        champions.model_version as champion_model_version,
        champions.run_uuid as champion_run_uuid,
        {{ champion_value }} as champion_value,
        (
            select
                case
                    when model_gates.direction = 'lower' then min({{ holder_value }})
                    else max({{ holder_value }})
                end
            from earlier_holders
            inner join evaluation as holder_evaluation
                on earlier_holders.run_uuid = holder_evaluation.run_uuid
            where
                earlier_holders.workspace = model_gates.workspace
                and earlier_holders.registered_model_name = model_gates.registered_model_name
        ) as best_earlier_value,
        newest_runs.newest_evaluated_run_at
    from model_gates
    left join champions
        on
            model_gates.workspace = champions.workspace
            and model_gates.registered_model_name = champions.registered_model_name
    left join evaluation as champion_evaluation
        on champions.run_uuid = champion_evaluation.run_uuid
    left join newest_runs
        on
            model_gates.workspace = newest_runs.workspace
            and model_gates.registered_model_name = newest_runs.registered_model_name
),

observed as (
    select
        *,
        case
            when gate = 'metric_floor' then champion_value
            when gate = 'champion_regression' and direction = 'lower' then champion_value - best_earlier_value
            when gate = 'champion_regression' then best_earlier_value - champion_value
            when gate = 'run_freshness' then {{ run_age_seconds }} / 3600.0
        end as observed_value
    from measured
),

-- a gate with nothing to measure (no champion, no earlier holder, no evaluated run) passes
judged as (
    select
        *,
        coalesce(
            case
                when gate = 'metric_floor' and direction = 'lower' then observed_value <= threshold
                when gate = 'metric_floor' then observed_value >= threshold
                else observed_value <= threshold
            end,
            true
        ) as is_passing
    from observed
),

described as (
    select
        *,
        'champion v' || coalesce(cast(champion_model_version as varchar), '?') || ' ' || measure || ' '
        || coalesce(to_char(champion_value, 'FM0.000000'), 'none') as champion_text,
        case
            when gate = 'metric_floor' and direction = 'lower'
                then ', ceiling ' || to_char(threshold, 'FM0.000000')
            when gate = 'metric_floor'
                then ', floor ' || to_char(threshold, 'FM0.000000')
            when gate = 'champion_regression'
                then
                    ', best earlier holder ' || coalesce(to_char(best_earlier_value, 'FM0.000000'), 'none')
                    || ', tolerance ' || to_char(threshold, 'FM0.000000')
        end as threshold_text
    from judged
),

final as (
    select
        workspace,
        registered_model_name,
        gate,
        measure,
        severity,
        threshold,
        observed_value,
        is_passing,
        champion_model_version,
        champion_run_uuid,
        champion_value,
        best_earlier_value,
        newest_evaluated_run_at,
        'quality gate ' || gate || ' (' || severity || ') for ' || registered_model_name || ': '
        || case
            when gate = 'run_freshness'
                then
                    'newest evaluated run ' || coalesce(to_char(observed_value, 'FM999999990.0'), 'none')
                    || ' hours old, limit ' || to_char(threshold, 'FM999999990.0')
            else champion_text || threshold_text
        end
        || case when is_passing then ': passes' else ': FAILS' end as message
    from described
)

select * from final
