{#- An aggregate (for a `group by run_uuid`) that digests every metric value of a run: key,
    stored value, NaN flag, step and time of each row of `metric_values` (its history and its
    latest values, told apart by `metric_table`). Any change to a value changes the digest. -#}
{% macro run_metric_digest() %}
    {{- return(adapter.dispatch('run_metric_digest', 'ml_eval')()) -}}
{% endmacro %}

{% macro default__run_metric_digest() -%}
    {{ dbt.hash(
        "string_agg(" ~ dbt.concat([
            'metric_table', "'|'", 'metric_key', "'|'",
            dbt.safe_cast('stored_value', dbt.type_string()), "'|'",
            dbt.safe_cast('is_nan', dbt.type_string()), "'|'",
            dbt.safe_cast('step', dbt.type_string()), "'|'",
            dbt.safe_cast('logged_at', dbt.type_string()),
        ]) ~ ", ',' order by metric_table, metric_key, logged_at, step, stored_value)"
    ) }}
{%- endmacro %}
