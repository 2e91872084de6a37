{#- The change tracking src/ml_eval/changes.py installs over the producer's tables, as the dbt
    side knows it (a test holds the two equal): the versions tables each tracked schema has,
    and for each tracked table the trigger function its statement-level AFTER triggers call,
    one trigger per event (its pg_trigger.tgtype: the event's bit). -#}
{% macro change_tracking() %}
    {{ return({
        'run_versions': 'run_versions',
        'dataset_versions': 'dataset_versions',
        'triggers': {
            'ml_eval_track_changes_insert': 4,
            'ml_eval_track_changes_delete': 8,
            'ml_eval_track_changes_update': 16,
            'ml_eval_track_changes_truncate': 32,
        },
        'functions': {
            'predictions': 'ml_eval_bump_runs',
            'prediction_scores': 'ml_eval_bump_runs_of_scores',
            'run_datasets': 'ml_eval_bump_runs',
            'samples': 'ml_eval_bump_datasets',
            'classes': 'ml_eval_bump_datasets',
            'targets': 'ml_eval_bump_datasets_of_targets',
        },
    }) }}
{% endmacro %}


{#- A query of one boolean: the table `relation` (an alias of pg_class) has every trigger of
    the change tracking (`tracking`, change_tracking()) as installed: its name and type, enabled
    ALWAYS, on no condition and no column list, calling the tracked table's function, of the
    table's schema and owner, SECURITY DEFINER; the same checks as
    ml_eval.changes.installed_triggers. -#}
{% macro is_change_tracked(relation, tracking) -%}
    select count(*) = {{ tracking.triggers | length }}
    from pg_trigger as tracking_trigger
    inner join pg_proc as bump on bump.oid = tracking_trigger.tgfoid
    where
        tracking_trigger.tgrelid = {{ relation }}.oid
        and (tracking_trigger.tgname, tracking_trigger.tgtype) in (
            {%- for name, trigger_type in tracking.triggers.items() %}
            ({{ ml_eval.sql_string(name) }}, {{ trigger_type }}){{ ',' if not loop.last }}
            {%- endfor %}
        )
        and tracking_trigger.tgenabled = 'A'
        and tracking_trigger.tgqual is null
        and cardinality(tracking_trigger.tgattr::int2 []) = 0
        and ({{ relation }}.relname, bump.proname) in (
            {%- for table, function in tracking.functions.items() %}
            ({{ ml_eval.sql_string(table) }}, {{ ml_eval.sql_string(function) }}){{ ',' if not loop.last }}
            {%- endfor %}
        )
        and bump.pronamespace = {{ relation }}.relnamespace
        and bump.proowner = {{ relation }}.relowner
        and bump.prosecdef
{%- endmacro %}
