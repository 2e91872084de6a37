{#- `materialized='table'` on PostgreSQL, when this project is the root project: dbt's table,
    left in place when nothing it is made of changed. dbt re-creates every table on every run,
    whatever changed (0.1-0.9 s each at 10,000 runs, measured). This one first digests what
    the model's SQL reads (`table_inputs`, one round trip): every table under the views it
    reads, through the dependencies PostgreSQL records for views; the compiled SQL, the
    model's config, description, columns and constraints, the session's role and print
    settings, each relation's oid, name, kind, columns and view definition, and the row
    versions of each table read (how many rows, and a sum of hashes of the ids of the
    transactions that wrote them: an INSERT, UPDATE, DELETE or TRUNCATE changes them). A table
    under the project's change tracking (src/ml_eval/changes.py: triggers that bump a version
    on every change) is not scanned: its schema's versions tables are. When the digest and the
    table's own rows, columns, constraints, indexes and comments are what the last build
    recorded (state table ml_eval_kept_tables), the table is kept as it is: its grants are
    brought to the model's and its hooks run, as dbt's table does. Otherwise it is built as
    dbt's table builds it (the contract enforced the same way) and the digest is recorded in
    the same transaction. Always built: `--full-refresh`; a model whose SQL or a view under it
    reads the clock, the session or the catalogs, or calls a volatile function or one not built
    into PostgreSQL (their result can change with nothing else changing); one that reads a
    sequence, a foreign or temporary table, a table under row-level security or one the role
    may not select; and SQL PostgreSQL cannot keep as a view. dbt's log says why.
    As a package of another project, dbt's own table materialization is used (dbt lets only
    the root project replace it): the tables are then re-created on every run. -#}
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

    {%- set compare = existing_relation is not none and existing_relation.is_table and not should_full_refresh() -%}
    {%- set inputs = ml_eval.table_inputs(sql, key, target_relation if compare else none) -%}
    {%- set inputs_digest = inputs.inputs_digest -%}
    {%- set unchanged = inputs.is_unchanged -%}

    {%- if unchanged -%}
        {%- do store_raw_result('main', message='KEPT', code='KEPT', rows_affected=0) -%}
        {%- do apply_grants(target_relation, grant_config, should_revoke=true) -%}
        {{ run_hooks(post_hooks, inside_transaction=True) }}
        {{ adapter.commit() }}
    {%- else -%}
        {%- call statement('main') -%}
            {{ get_create_table_as_sql(False, intermediate_relation, sql) }}
        {%- endcall -%}
        {%- do create_indexes(intermediate_relation) -%}
        {%- set existing_relation = ml_eval.swap_into_place(existing_relation, intermediate_relation, backup_relation, target_relation) -%}
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


{#- What the model's `sql` reads and whether its table (`existing`, or none) can be kept, in
    one round trip: a dict of `inputs_digest` (none when the table must be built every time:
    see the materialization; dbt's log says why) and `is_unchanged` (the digest, and the
    table's own versions and comments, are what its last build recorded under `key`).

    The SQL is created as a temporary view; PostgreSQL records its dependencies, and those of
    every view under it, in pg_depend: what it reads (`dependencies`), the tables among them
    whose row versions stand for their content (`scanned`), and the functions, operators and
    casts it calls. It records none on what is pinned (built-in functions and catalogs): those
    are found by name in the view definitions. The digest is of the definition (the compiled
    SQL, the model's config, description, columns and constraints), the structure (the
    session's role and print settings; each relation's oid, name, kind, columns and view
    definition; the tracking triggers) and the row versions of each table scanned. SQL that
    PostgreSQL refuses as a view (a syntax only CREATE TABLE AS accepts) is never kept. -#}
{% macro table_inputs(sql, key, existing) %}
    {#- the built-in calls and names whose result can change with nothing else changing: the
        clock, the session, the catalogs (and what reads tables by name: the *_to_xml family,
        a text cast to regclass and its kin at run time); and every volatile built-in (pg_proc).
        The catalogs are pinned, so found by name; information_schema's views and functions are
        recorded, of oids below 16384, and `refusals` refuses those too -#}
    {%- set unsafe_calls = '^(pg_\\w+|_pg_\\w+|has_\\w+|to_reg\\w+|\\w+_description|current_\\w+|inet_\\w+|now|age'
        ~ '|timeofday|statement_timestamp|transaction_timestamp|version|\\w*_to_xml\\w*|format_type|row_security_active'
        ~ '|reg(class|type|proc|procedure|oper|operator|namespace|role|config|dictionary|collation)\\w*)$' -%}
    {%- set unsafe_names = '\\m(current_timestamp|current_date|current_time|localtime|localtimestamp|current_user'
        ~ '|session_user|current_role|current_catalog|current_schema|information_schema|pg_\\w+)\\M'
        ~ "|[^']::reg(class|type|proc|procedure|oper|operator|namespace|role|config|dictionary|collation)\\M" -%}
    {#- 'now'::timestamptz, 'today 12:00'::timestamp and the like are frozen into a view's
        definition: read in the SQL (a literal of one line, quoted or dollar-quoted, with the
        word in it) and in every definition (a text cast at run time) -#}
    {%- set clock_words = '\\m(now|today|tomorrow|yesterday)\\M' -%}
    {%- set clock_literals = "'[^'\\n]*" ~ clock_words ~ "[^'\\n]*'|\\$\\w*\\$[^$\\n]*" ~ clock_words ~ "[^$\\n]*\\$\\w*\\$" -%}
    {%- set tracking = ml_eval.change_tracking() -%}
    {%- set definition = local_md5(sql ~ '|' ~ tojson(model.config, sort_keys=true) ~ '|' ~ (model.description or '')
        ~ '|' ~ tojson(model.columns, sort_keys=true) ~ '|' ~ tojson(model.constraints, sort_keys=true)) -%}
    {%- set block -%}
        declare
            reads_found record;
            table_scanned oid;
            rows_of_one text;
            rows_of_scanned text := '';
            digest_of_inputs text;
            kept_as_is boolean := false;
        begin
            begin
                execute 'create temporary view ml_eval_table_reads as ' || {{ ml_eval.sql_string(sql) }};
            exception when others then
                null;
            end;

            with recursive

            -- every object the rules of the SQL's view and of the views under it depend on
            dependencies (refclassid, refobjid) as (
                select dependency.refclassid, dependency.refobjid
                from pg_rewrite as rule
                inner join pg_depend as dependency
                    on dependency.classid = 'pg_rewrite'::regclass and dependency.objid = rule.oid
                where
                    rule.ev_class = to_regclass('pg_temp.ml_eval_table_reads')
                    and (dependency.refclassid, dependency.refobjid) <> ('pg_class'::regclass, rule.ev_class)
                union
                select dependency.refclassid, dependency.refobjid
                from dependencies
                inner join pg_class as relation
                    on
                        dependencies.refclassid = 'pg_class'::regclass
                        and relation.oid = dependencies.refobjid
                        and relation.relkind = 'v'
                inner join pg_rewrite as rule on rule.ev_class = relation.oid
                inner join pg_depend as dependency
                    on dependency.classid = 'pg_rewrite'::regclass and dependency.objid = rule.oid
                where (dependency.refclassid, dependency.refobjid) <> ('pg_class'::regclass, rule.ev_class)
            ),

            relations as (
                select
                    relation.oid,
                    relation.relkind,
                    relation.relpersistence,
                    relation.relrowsecurity,
                    relation.oid::regclass::text as relation_name,
                    case when relation.relkind = 'v' then pg_get_viewdef(relation.oid) end as view_definition,
                    versions.run_versions,
                    versions.dataset_versions,
                    relation.relkind = 'r'
                    and versions.run_versions is not null
                    and versions.dataset_versions is not null
                    and ({{ ml_eval.is_change_tracked('relation', tracking) }}) as is_tracked
                from dependencies
                inner join pg_class as relation on relation.oid = dependencies.refobjid
                inner join pg_namespace as namespace on namespace.oid = relation.relnamespace
                cross join lateral (
                    select
                        to_regclass(quote_ident(namespace.nspname) || '.{{ tracking.run_versions }}') as run_versions,
                        to_regclass(quote_ident(namespace.nspname) || '.{{ tracking.dataset_versions }}') as dataset_versions
                ) as versions
                where dependencies.refclassid = 'pg_class'::regclass
            ),

            -- the tables whose row versions are digested: a tracked table's changes bump rows
            -- of its schema's versions tables, which stand for it
            scanned as (
                select relations.oid, relations.relation_name
                from relations
                where relations.relkind in ('r', 'p', 'm') and not relations.is_tracked
                union
                select versions.oid, versions.oid::regclass::text
                from relations
                cross join lateral unnest(array[relations.run_versions, relations.dataset_versions]) as tracked (versions_oid)
                inner join pg_class as versions on versions.oid = tracked.versions_oid
                where relations.is_tracked
            ),

            -- the partitions and inheritance children a scanned table's rows come from
            descendants (relation_oid) as (
                select scanned.oid from scanned
                union
                select pg_inherits.inhrelid
                from descendants
                inner join pg_inherits on pg_inherits.inhparent = descendants.relation_oid
            ),

            definitions as (
                select
                    'its SQL' as what,
                    pg_get_viewdef(to_regclass('pg_temp.ml_eval_table_reads')) as view_definition
                union all
                select 'view ' || relations.relation_name, relations.view_definition
                from relations
                where relations.relkind = 'v'
            ),

            -- every name the definitions call, to look up among the unsafe built-ins
            called_names as (
                select distinct definitions.what, lower(called.match[1]) as function_name
                from definitions
                cross join lateral regexp_matches(definitions.view_definition, '(\w+)\s*\(', 'g') as called (match)
            ),

            refusals as (
                select 'it is not a query PostgreSQL keeps as a view' as reason
                where to_regclass('pg_temp.ml_eval_table_reads') is null
                union all
                select 'it reads the clock'
                where {{ ml_eval.sql_string(sql) }} ~* {{ ml_eval.sql_string(clock_literals) }}
                union all
                select definitions.what || ' reads the clock, the session or the catalogs'
                from definitions
                where
                    definitions.view_definition ~* {{ ml_eval.sql_string(unsafe_names) }}
                    or definitions.view_definition ~* {{ ml_eval.sql_string(clock_literals) }}
                union all
                select called_names.what || ' calls ' || called_names.function_name
                from called_names
                where
                    called_names.function_name ~ {{ ml_eval.sql_string(unsafe_calls) }}
                    or exists (
                        select 1
                        from pg_proc
                        where
                            pg_proc.proname = called_names.function_name
                            and pg_proc.provolatile = 'v'
                            and pg_proc.pronamespace = 'pg_catalog'::regnamespace
                    )
                union all
                -- information_schema's functions are recorded, below 16384 but not in pg_catalog;
                -- a text search configuration or dictionary can be altered in place
                select 'it calls ' || dependencies.refobjid::text || ' of ' || dependencies.refclassid::regclass::text
                    || ', not built into PostgreSQL'
                from dependencies
                left join pg_proc on dependencies.refclassid = 'pg_proc'::regclass and pg_proc.oid = dependencies.refobjid
                where
                    dependencies.refclassid in (
                        'pg_proc'::regclass, 'pg_operator'::regclass, 'pg_cast'::regclass,
                        'pg_ts_config'::regclass, 'pg_ts_dict'::regclass, 'pg_ts_parser'::regclass, 'pg_ts_template'::regclass
                    )
                    and (dependencies.refobjid >= 16384 or pg_proc.pronamespace <> 'pg_catalog'::regnamespace)
                union all
                select 'it reads ' || relations.relation_name
                    || ': a sequence, a catalog, foreign, temporary or under row-level security'
                from relations
                where
                    relations.relkind in ('f', 'S')
                    or relations.relpersistence = 't'
                    or relations.relrowsecurity
                    or relations.oid < 16384
                union all
                select 'it reads ' || descendant.oid::regclass::text || ': foreign or under row-level security'
                from descendants
                inner join pg_class as descendant on descendant.oid = descendants.relation_oid
                where descendant.relkind = 'f' or descendant.relrowsecurity
                union all
                select 'it reads ' || scanned.relation_name || ', which the role may not select'
                from scanned
                where not has_table_privilege(scanned.oid, 'select')
            )

            select
                (select min(refusals.reason) from refusals) as reason,
                (select coalesce(array_agg(scanned.oid order by scanned.relation_name), '{}') from scanned) as scanned,
                md5(concat_ws(
                    '|',
                    current_user,
                    current_setting('TimeZone'),
                    current_setting('DateStyle'),
                    current_setting('IntervalStyle'),
                    current_setting('extra_float_digits'),
                    current_setting('lc_monetary'),
                    current_setting('lc_numeric'),
                    current_setting('lc_time'),
                    current_setting('search_path'),
                current_setting('default_text_search_config'),
                current_setting('bytea_output'),
                current_setting('quote_all_identifiers'),
                current_setting('xmloption'),
                current_setting('xmlbinary'),
                    (
                        select string_agg(
                            concat_ws(
                                ':',
                                relations.oid,
                                relations.relation_name,
                                relations.relkind,
                                relations.is_tracked,
                                ({{ ml_eval.table_columns('relations.oid') }}),
                                md5(relations.view_definition),
                                (
                                    -- disabling a tracking trigger and enabling it again writes its row
                                    select md5(string_agg(tracking_trigger.xmin::text || bump.prosrc, ',' order by tracking_trigger.tgname))
                                    from pg_trigger as tracking_trigger
                                    inner join pg_proc as bump on bump.oid = tracking_trigger.tgfoid
                                    where relations.is_tracked and tracking_trigger.tgrelid = relations.oid
                                )
                            ),
                            '|' order by relations.relation_name
                        )
                        from relations
                    ),
                    (
                        -- the labels of the enums the definitions name (a cast, a constant)
                        select string_agg(
                            label.enumtypid || ' ' || label.enumlabel || ' ' || label.enumsortorder, ','
                            order by label.enumtypid, label.enumsortorder
                        )
                        from dependencies
                        inner join pg_enum as label on label.enumtypid = dependencies.refobjid
                        where dependencies.refclassid = 'pg_type'::regclass
                    )
                )) as structure
            into reads_found;

            if reads_found.reason is null then
                foreach table_scanned in array reads_found.scanned loop
                    execute format('{{ ml_eval.table_row_versions("%s") | replace("'", "''") }}', table_scanned::regclass)
                    into rows_of_one;
                    rows_of_scanned := rows_of_scanned || '|' || rows_of_one;
                end loop;
                digest_of_inputs := md5({{ ml_eval.sql_string(definition) }} || '|' || reads_found.structure || rows_of_scanned);
                {%- if existing is not none %}
                select coalesce(
                    (
                        select kept.inputs_digest
                        from {{ ml_eval.publish_state_relation('ml_eval_kept_tables') }} as kept
                        where kept.built_relation = {{ key }}
                    ) = digest_of_inputs || ':' || ({{ ml_eval.table_own_versions(existing) }})
                    and ({{ ml_eval.comments_are_documented(existing) }}),
                    false
                )
                into kept_as_is;
                {%- endif %}
            end if;

            drop view if exists pg_temp.ml_eval_table_reads;
            perform set_config(
                'ml_eval.table_inputs',
                json_build_object('reason', reads_found.reason, 'inputs_digest', digest_of_inputs, 'is_unchanged', kept_as_is)::text,
                true
            );
        end
    {%- endset -%}
    {#- a dollar quote nothing in the block can close: the digest of the block -#}
    {%- set tag = '$ml_eval_' ~ local_md5(block) ~ '$' -%}
    {%- call statement('table_inputs', fetch_result=true) -%}
        drop view if exists pg_temp.ml_eval_table_reads;
        do {{ tag }}
        {{ block }}
        {{ tag }};
        select current_setting('ml_eval.table_inputs')
    {%- endcall -%}
    {%- set found = fromjson(load_result('table_inputs')['data'][0][0]) -%}
    {%- if found.reason is not none -%}
        {{ log('table ' ~ this ~ ' is built again on every run: ' ~ found.reason) }}
    {%- endif -%}
    {{ return({'inputs_digest': found.inputs_digest, 'is_unchanged': found.is_unchanged}) }}
{% endmacro %}


{#- A query of one text that changes when a row of `relation` is inserted, updated or
    deleted: how many rows, and the sum of a 64-bit hash of the id of the transaction that wrote
    each (a sum of the ids themselves can come out the same when two writers change rows). -#}
{% macro table_row_versions(relation) -%}
    select count(*)::text || ':' || coalesce(sum(hashint8extended(xmin::text::bigint, 0)), 0)::text from {{ relation }}
{%- endmacro %}


{#- A query of the digest of a relation's columns (`relation_oid`, an oid expression): their
    numbers, names and types, so a column dropped and added again compares as changed. -#}
{% macro table_columns(relation_oid) -%}
    select md5(string_agg(
        attribute.attnum || ' ' || attribute.attname || ' ' || format_type(attribute.atttypid, attribute.atttypmod)
        -- an enum's labels can be renamed or reordered in place: they print
        || coalesce(' ' || (
            select string_agg(label.enumlabel || ' ' || label.enumsortorder, ',' order by label.enumtypid, label.enumsortorder)
            from pg_type as column_type
            inner join pg_enum as label
                on label.enumtypid in (column_type.oid, column_type.typelem, column_type.typbasetype)
            where column_type.oid = attribute.atttypid
        ), ''),
        ',' order by attribute.attnum
    ))
    from pg_attribute as attribute
    where attribute.attrelid = {{ relation_oid }} and attribute.attnum > 0 and not attribute.attisdropped
{%- endmacro %}


{#- The built table's own row versions, oid, columns, constraints and indexes: a row, a
    column, a constraint or an index changed by hand has it built again. -#}
{% macro table_own_versions(relation) -%}
    {%- set relation_oid = ml_eval.sql_string(relation.include(database=false)) ~ '::regclass' -%}
    select concat_ws(
        ':',
        ({{ ml_eval.table_row_versions(relation) }}),
        {{ relation_oid }}::oid,
        ({{ ml_eval.table_columns(relation_oid) }}),
        (
            select md5(string_agg(conname || ' ' || pg_get_constraintdef(oid), ',' order by conname))
            from pg_constraint
            where conrelid = {{ relation_oid }}
        ),
        (
            select md5(string_agg(pg_get_indexdef(indexrelid), ',' order by indexrelid::regclass::text))
            from pg_index
            where indrelid = {{ relation_oid }}
        )
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
