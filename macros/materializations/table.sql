{#- `materialized='table'` on PostgreSQL, when this project is the root project: dbt's table,
    left in place when nothing it is made of changed. dbt re-creates every table on every run,
    whatever changed (0.1-0.9 s each at 10,000 runs, measured). This one first lists what the
    model's SQL reads (`table_reads`): every table under the views it reads, through the
    dependencies PostgreSQL records for views; and it digests them (`table_inputs_digest`):
    the compiled SQL, the model's config, description and columns, each relation's name, kind,
    columns and view definition, and the row versions of each table read (how many rows, and
    the sum of their creating transactions' ids: an INSERT, UPDATE, DELETE or TRUNCATE changes
    them). A table under the project's change tracking (src/ml_eval/changes.py, triggers that
    bump a version on every change) is not scanned: its versions tables are. When the digest
    and the table's own row versions and comments are what the last build recorded (state table
    ml_eval_kept_tables), the table is kept as it is: its grants are brought to the model's and
    its hooks run, as dbt's table does. Otherwise it is built as dbt's table builds it (the
    contract enforced the same way) and the digest is recorded in the same transaction.
    Always built: `--full-refresh`, a model whose SQL or views read the clock or call a volatile
    or user-defined function (their result can change with nothing else changing), one that
    reads a foreign or temporary table, one under row-level security, one that reads what the
    role may not select directly, and SQL PostgreSQL cannot keep as a view.
    As a package of another project, dbt's own table materialization is used (dbt lets only
    the root project replace it): the marts are then re-created on every run. -#}
{%- materialization table, adapter='postgres' -%}

    {%- set existing_relation = load_cached_relation(this) -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set intermediate_relation = make_intermediate_relation(target_relation) -%}
    {%- set preexisting_intermediate_relation = load_cached_relation(intermediate_relation) -%}
    {%- set backup_relation_type = 'table' if existing_relation is none else existing_relation.type -%}
    {%- set backup_relation = make_backup_relation(target_relation, backup_relation_type) -%}
    {%- set preexisting_backup_relation = load_cached_relation(backup_relation) -%}
    {%- set grant_config = config.get('grants') -%}
    {%- set key = ml_eval.fingerprint_key(this.schema, this.identifier) -%}

    {{ drop_relation_if_exists(preexisting_intermediate_relation) }}
    {{ drop_relation_if_exists(preexisting_backup_relation) }}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set reads = ml_eval.table_reads(sql) -%}
    {%- set inputs_digest = ml_eval.table_inputs_digest(reads) if reads.keepable else none -%}
    {%- set compare = inputs_digest is not none and existing_relation is not none
        and existing_relation.is_table and not should_full_refresh() -%}

    {%- if compare -%}
        {%- call statement('main', fetch_result=true) -%}
            select coalesce(
                (
                    select kept.inputs_digest
                    from {{ ml_eval.publish_state_relation('ml_eval_kept_tables') }} as kept
                    where kept.built_relation = {{ key }}
                ) = {{ ml_eval.sql_string(inputs_digest) }} || ':' || ({{ ml_eval.table_own_versions(target_relation) }})
                and ({{ ml_eval.comments_are_documented(target_relation) }}),
                false
            ) as is_unchanged
        {%- endcall -%}
        {%- set unchanged = load_result('main')['data'][0][0] -%}
    {%- else -%}
        {%- set unchanged = false -%}
    {%- endif -%}

    {%- if unchanged -%}
        {%- do apply_grants(target_relation, grant_config, should_revoke=true) -%}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
        {{ adapter.commit() }}
    {%- else -%}
        {%- call statement('main') -%}
            {{ get_create_table_as_sql(False, intermediate_relation, sql) }}
        {%- endcall -%}
        {%- do create_indexes(intermediate_relation) -%}
        {#- as dbt's table: the existing relation may have gone since it was first looked up -#}
        {%- set existing_relation = load_cached_relation(existing_relation) if existing_relation is not none else none -%}
        {%- if existing_relation is not none -%}
            {{ adapter.rename_relation(existing_relation, backup_relation) }}
        {%- endif -%}
        {{ adapter.rename_relation(intermediate_relation, target_relation) }}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
        {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke(existing_relation, full_refresh_mode=True)) -%}
        {%- do persist_docs(target_relation, model) -%}
        {%- call statement('record_inputs') -%}
            {{ ml_eval.record_table_inputs(key, inputs_digest, target_relation) }}
        {%- endcall -%}
        {{ adapter.commit() }}
        {{ drop_relation_if_exists(backup_relation) }}
    {%- endif -%}

    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target_relation]}) }}

{%- endmaterialization -%}


{#- What `sql` reads, as a dict: `keepable` (false when the table must be built every time:
    see the materialization), `reason` (why not, for the log), `scanned` (the regclass names of
    the tables whose row versions stand for their content) and `structure` (a digest of the
    relations' names, kinds, columns, view definitions and change-tracking functions). The SQL
    is kept as a temporary view, whose dependencies PostgreSQL records; SQL it refuses as a
    view (a syntax it accepts only in CREATE TABLE AS) is not keepable. -#}
{% macro table_reads(sql) %}
    {%- set clock = '\\m(now|current_timestamp|current_date|current_time|localtime|localtimestamp'
        ~ '|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|random|setseed'
        ~ '|gen_random_uuid|nextval|txid_current|pg_current_xact_id)\\M' -%}
    {%- set tracking_triggers = ['ml_eval_track_changes_insert', 'ml_eval_track_changes_update',
        'ml_eval_track_changes_delete', 'ml_eval_track_changes_truncate'] -%}
    {%- call statement('table_reads', fetch_result=true) -%}
        do $ml_eval_table_reads$
        begin
            drop view if exists pg_temp.ml_eval_table_reads;
            execute 'create temporary view ml_eval_table_reads as ' || {{ ml_eval.sql_string(sql) }};
        exception when others then
            null;
        end
        $ml_eval_table_reads$;
        with recursive

        rules as (
            select rule.oid as rule_oid, rule.ev_class as view_oid
            from pg_rewrite as rule
            where rule.ev_class = to_regclass('pg_temp.ml_eval_table_reads')
        ),

        reads (relation_oid) as (
            select dependency.refobjid
            from rules
            inner join pg_depend as dependency
                on
                    dependency.classid = 'pg_rewrite'::regclass
                    and dependency.objid = rules.rule_oid
                    and dependency.refclassid = 'pg_class'::regclass
                    and dependency.refobjid <> rules.view_oid
            union
            select dependency.refobjid
            from reads
            inner join pg_class as relation on relation.oid = reads.relation_oid and relation.relkind = 'v'
            inner join pg_rewrite as rule on rule.ev_class = reads.relation_oid
            inner join pg_depend as dependency
                on
                    dependency.classid = 'pg_rewrite'::regclass
                    and dependency.objid = rule.oid
                    and dependency.refclassid = 'pg_class'::regclass
                    and dependency.refobjid <> reads.relation_oid
        ),

        -- every function the SQL or a view under it calls
        functions as (
            select distinct dependency.refobjid as function_oid
            from pg_rewrite as rule
            inner join pg_depend as dependency
                on
                    dependency.classid = 'pg_rewrite'::regclass
                    and dependency.objid = rule.oid
                    and dependency.refclassid = 'pg_proc'::regclass
            where
                rule.ev_class = to_regclass('pg_temp.ml_eval_table_reads')
                or rule.ev_class in (select reads.relation_oid from reads)
        ),

        relations as (
            select
                relation.oid,
                relation.relkind,
                relation.relpersistence,
                relation.relrowsecurity,
                relation.relnamespace,
                relation.oid::regclass::text as relation_name,
                namespace.nspname,
                relation.relkind = 'r' and (
                    select count(*) = {{ tracking_triggers | length }}
                    from pg_trigger as tracking
                    inner join pg_proc as bump on bump.oid = tracking.tgfoid
                    where
                        tracking.tgrelid = relation.oid
                        and tracking.tgname in ('{{ tracking_triggers | join("', '") }}')
                        and tracking.tgenabled = 'A'
                        and bump.pronamespace = relation.relnamespace
                ) as is_tracked
            from reads
            inner join pg_class as relation on relation.oid = reads.relation_oid
            inner join pg_namespace as namespace on namespace.oid = relation.relnamespace
        ),

        -- a tracked table's changes bump rows of its schema's versions tables: those are scanned
        versions_tables as (
            select distinct versions.oid, versions.oid::regclass::text as relation_name
            from relations
            cross join lateral (
                values
                    (to_regclass(quote_ident(relations.nspname) || '.run_versions')),
                    (to_regclass(quote_ident(relations.nspname) || '.dataset_versions'))
            ) as candidate (versions_oid)
            inner join pg_class as versions on versions.oid = candidate.versions_oid
            where relations.is_tracked
        ),

        scanned as (
            select relations.oid, relations.relation_name
            from relations
            where relations.relkind in ('r', 'p', 'm') and not relations.is_tracked
            union
            select versions_tables.oid, versions_tables.relation_name
            from versions_tables
        ),

        refusals as (
            select 'it is not a query PostgreSQL keeps as a view' as reason
            where to_regclass('pg_temp.ml_eval_table_reads') is null
            union all
            select 'it reads the clock or a random or volatile function'
            where pg_get_viewdef(to_regclass('pg_temp.ml_eval_table_reads')) ~* {{ ml_eval.sql_string(clock) }}
            union all
            select 'a view it reads reads the clock: ' || relations.relation_name
            from relations
            where relations.relkind = 'v' and pg_get_viewdef(relations.oid) ~* {{ ml_eval.sql_string(clock) }}
            union all
            select 'it calls ' || function_oid::regprocedure::text
            from functions
            inner join pg_proc on pg_proc.oid = functions.function_oid
            where pg_proc.provolatile = 'v' or functions.function_oid >= 16384
            union all
            select 'it reads ' || relations.relation_name || ', which is foreign, temporary or under row-level security'
            from relations
            where relations.relkind = 'f' or relations.relpersistence = 't' or relations.relrowsecurity
            union all
            select 'it reads ' || scanned.relation_name || ', which the role may not select'
            from scanned
            where not has_table_privilege(scanned.oid, 'select')
        )

        select
            (select min(refusals.reason) from refusals) as reason,
            (select coalesce(json_agg(scanned.relation_name order by scanned.relation_name), '[]')::text from scanned) as scanned,
            md5(coalesce((
                select string_agg(
                    concat_ws(
                        ':',
                        relations.relation_name,
                        relations.relkind,
                        relations.is_tracked,
                        (
                            select md5(string_agg(attribute.attname || ' ' || format_type(attribute.atttypid, attribute.atttypmod), ',' order by attribute.attnum))
                            from pg_attribute as attribute
                            where attribute.attrelid = relations.oid and attribute.attnum > 0 and not attribute.attisdropped
                        ),
                        case when relations.relkind = 'v' then md5(pg_get_viewdef(relations.oid)) end,
                        (
                            select md5(string_agg(bump.prosrc, ',' order by bump.proname))
                            from pg_trigger as tracking
                            inner join pg_proc as bump on bump.oid = tracking.tgfoid
                            where relations.is_tracked and tracking.tgrelid = relations.oid
                        )
                    ),
                    '|' order by relations.relation_name
                )
                from relations
            ), '')) as structure
    {%- endcall -%}
    {%- set row = load_result('table_reads')['data'][0] -%}
    {%- if row[0] is not none -%}
        {{ log('table ' ~ this ~ ' is built again on every run: ' ~ row[0]) }}
    {%- endif -%}
    {{ return({'keepable': row[0] is none, 'reason': row[0], 'scanned': fromjson(row[1]), 'structure': row[2]}) }}
{% endmacro %}


{#- The digest of a model's inputs (table_reads): its compiled SQL and definition, the
    structure of what it reads, and the row versions of each table scanned, in one query. -#}
{% macro table_inputs_digest(reads) %}
    {%- set definition = local_md5(sql ~ '|' ~ tojson(model.config, sort_keys=true) ~ '|' ~ (model.description or '')
        ~ '|' ~ tojson(model.columns, sort_keys=true)) -%}
    {%- call statement('table_inputs_digest', fetch_result=true) -%}
        select md5(concat_ws(
            '|',
            {{ ml_eval.sql_string(definition) }},
            {{ ml_eval.sql_string(reads.structure) }}
            {%- for relation_name in reads.scanned %},
            ({{ ml_eval.table_row_versions(relation_name) }})
            {%- endfor %}
        ))
    {%- endcall -%}
    {{ return(load_result('table_inputs_digest')['data'][0][0]) }}
{% endmacro %}


{#- A query of one text that changes when a row of `relation` is inserted, updated or
    deleted: how many rows, and the sum of the ids of the transactions that wrote them. -#}
{% macro table_row_versions(relation) -%}
    select count(*)::text || ':' || coalesce(sum(xmin::text::bigint), 0)::text from {{ relation }}
{%- endmacro %}


{#- The built table's own row versions and columns: a row or a column changed by hand has it
    built again. -#}
{% macro table_own_versions(relation) -%}
    select ({{ ml_eval.table_row_versions(relation) }}) || ':' || (
        select md5(string_agg(attribute.attname || ' ' || format_type(attribute.atttypid, attribute.atttypmod), ',' order by attribute.attnum))
        from pg_attribute as attribute
        where
            attribute.attrelid = {{ ml_eval.sql_string(relation.include(database=false)) }}::regclass
            and attribute.attnum > 0
            and not attribute.attisdropped
    )
{%- endmacro %}


{#- Records what a table was built from: its inputs' digest and its own row versions (so a
    row changed by hand has it built again); forgets it when the table cannot be kept. -#}
{% macro record_table_inputs(key, inputs_digest, relation) -%}
    {%- if inputs_digest is none -%}
        delete from {{ ml_eval.publish_state_relation('ml_eval_kept_tables') }} where built_relation = {{ key }}
    {%- else -%}
        insert into {{ ml_eval.publish_state_relation('ml_eval_kept_tables') }} as kept (built_relation, inputs_digest)
        select {{ key }}, {{ ml_eval.sql_string(inputs_digest) }} || ':' || ({{ ml_eval.table_own_versions(relation) }})
        on conflict (built_relation) do update set inputs_digest = excluded.inputs_digest
    {%- endif -%}
{%- endmacro %}
