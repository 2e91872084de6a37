{#- The publish state, five tables a reader can query (schema publish_state_schema):
    ml_eval_node_status, the latest status of every node of this package (what publish_decision
    reads, so that a `dbt retry` or a run-operation can publish); ml_eval_publishes, one row per
    publish attempted (published or not, and why); ml_eval_published_marts, per published mart
    how it was last published and the definition fingerprint it was made from;
    ml_eval_run_fingerprints, per relation built run by run (a run-keyed model, a by-run
    published mart) the input fingerprint (int_runs_classified) each of its runs was built
    from, so a run whose inputs changed is built again (macros/change_tracking/);
    ml_eval_kept_tables, per table model the digest of the inputs it was built from, so a table
    whose inputs did not change is kept (macros/materializations/table.sql). The schema is
    created only when missing: the transformer need not be allowed to create schemas. -#}
{% macro ensure_publish_state() %}
    {% set schema = publish_state_schema() %}
    {% set statements %}
        do $ensure$
        begin
            if not exists (select 1 from pg_namespace where nspname = {{ sql_string(schema) }}) then
                create schema {{ adapter.quote(schema) }};
            end if;
        end
        $ensure$;
        create table if not exists {{ publish_state_relation('ml_eval_node_status') }} (
            unique_id text primary key,
            resource_type text not null,
            status text not null,
            checksum text,
            invocation_id text not null,
            recorded_at timestamptz not null
        );
        create table if not exists {{ publish_state_relation('ml_eval_publishes') }} (
            invocation_id text not null,
            attempted_at timestamptz not null default clock_timestamp(),
            published_schema text not null,
            is_published boolean not null,
            message text not null,
            evaluated_runs bigint
        );
        create table if not exists {{ publish_state_relation('ml_eval_published_marts') }} (
            published_schema text not null,
            mart text not null,
            publish_method text not null,
            definition_fingerprint text not null,
            invocation_id text not null,
            published_at timestamptz not null,
            primary key (published_schema, mart)
        );
        create table if not exists {{ publish_state_relation('ml_eval_kept_tables') }} (
            built_relation text primary key,
            inputs_digest text not null
        );
        create table if not exists {{ publish_state_relation('ml_eval_run_fingerprints') }} (
            built_relation text not null,
            run_uuid varchar(32) not null,
            input_fingerprint text not null,
            primary key (built_relation, run_uuid)
        );
    {% endset %}
    {% do run_query('begin; ' ~ statements ~ ' commit;') %}
{% endmacro %}
