{#- The change tracking src/ml_eval/changes.py installs over the producer's tables, as the dbt
    side knows it (a test holds the two equal): the versions tables each tracked schema has,
    one statement-level AFTER trigger per event (its pg_trigger.tgtype, the event's bit, and
    the transition tables the functions read by name), and for each tracked table the trigger
    function its triggers call. -#}
{% macro change_tracking() %}
    {{ return({
        'run_versions': 'run_versions',
        'dataset_versions': 'dataset_versions',
        'triggers': {
            'ml_eval_track_changes_insert': {'type': 4, 'new_table': 'new_rows', 'old_table': none},
            'ml_eval_track_changes_delete': {'type': 8, 'new_table': none, 'old_table': 'old_rows'},
            'ml_eval_track_changes_update': {'type': 16, 'new_table': 'new_rows', 'old_table': 'old_rows'},
            'ml_eval_track_changes_truncate': {'type': 32, 'new_table': none, 'old_table': none},
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
    the change tracking (`tracking`, change_tracking()) as installed: its name, type and
    transition tables, enabled ALWAYS, on no condition and no column list, calling the tracked
    table's function, of the table's schema, SECURITY DEFINER; the same checks as
    ml_eval.changes.installed_triggers, which runs as the producer and asks the function's
    owner to be itself (install refuses a table another role owns), where this one, run as
    the transformer, asks it to be the table's owner. And the table has no inheritance
    children and is no child or partition: a statement on its parent, or on a child, changes
    rows with no trigger of its firing. -#}
{% macro is_change_tracked(relation, tracking) -%}
    select count(*) = {{ tracking.triggers | length }}
    from pg_trigger as tracking_trigger
    inner join pg_proc as bump on bump.oid = tracking_trigger.tgfoid
    where
        tracking_trigger.tgrelid = {{ relation }}.oid
        and (
            {%- for name, trigger in tracking.triggers.items() %}
            (
                tracking_trigger.tgname = {{ ml_eval.sql_string(name) }}
                and tracking_trigger.tgtype = {{ trigger.type }}
                and tracking_trigger.tgnewtable is not distinct from {{ ml_eval.sql_string(trigger.new_table) if trigger.new_table else 'null' }}
                and tracking_trigger.tgoldtable is not distinct from {{ ml_eval.sql_string(trigger.old_table) if trigger.old_table else 'null' }}
            ){{ ' or' if not loop.last }}
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
        -- a statement fires the triggers of the table it names only: a table with children,
        -- or one that is a child or a partition (written through its parent), is scanned
        and not {{ relation }}.relhassubclass
        and not exists (select 1 from pg_inherits where pg_inherits.inhrelid = {{ relation }}.oid)
{%- endmacro %}
