{#- on-run-start: the staging models read MLflow's tables as MLflow wrote them, so they are
    known to be right only for the schema revisions the tests build against
    (tests_python/test_mlflow_versions.py). Another revision, an empty alembic_version or a
    missing one is a warning (`exceptions.warn`), not an info line: `dbt build --warn-error`
    (CI, `make test`) stops on it before anything is built, while a plain `dbt build` goes
    on with the warning in its log. Add a revision to var `mlflow_tested_revisions` (read by
    `ml-eval` too) once the tests pass against its MLflow release.
    `resources`: the hook passes `selected_resources`, and only runs that read MLflow's tables
    are checked (the seeds step of `ml-eval demo` runs before MLflow has made any table).
    Without it (`dbt run-operation check_mlflow_schema`) the check always runs. -#}
{% macro check_mlflow_schema(resources=none, tested_revisions=none) %}
    {%- if not execute -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set tested_revisions = tested_revisions or var('mlflow_tested_revisions') -%}
    {#- this package's source only: a root project may declare a source named mlflow too -#}
    {%- set mlflow_sources = graph.sources.values() | selectattr('package_name', 'equalto', 'ml_eval')
        | selectattr('source_name', 'equalto', 'mlflow') | list -%}
    {%- set version_source = mlflow_sources | selectattr('name', 'equalto', 'alembic_version') | first -%}

    {#- the nodes that read MLflow's tables, directly or through other nodes: the graph is
        walked a bounded number of times, more than its depth -#}
    {%- if resources is not none -%}
        {%- set reading = {} -%}
        {%- for source_node in mlflow_sources -%}
            {%- do reading.update({source_node.unique_id: true}) -%}
        {%- endfor -%}
        {%- set nodes = graph.nodes.values() | list + (graph.get('unit_tests', {}).values() | list) -%}
        {%- for _ in range(25) -%}
            {%- for node in nodes if node.unique_id not in reading -%}
                {%- if node.depends_on.nodes | select('in', reading) | list | length > 0 -%}
                    {%- do reading.update({node.unique_id: true}) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- if resources | select('in', reading) | list | length == 0 -%}
            {%- do log('MLflow schema check skipped: no selected node reads MLflow tables') -%}
            {{- return('') -}}
        {%- endif -%}
    {%- endif -%}

    {%- set tested = [] -%}
    {%- for revision, release in tested_revisions.items() -%}
        {%- do tested.append(revision ~ ' (' ~ release ~ ')') -%}
    {%- endfor -%}
    {%- set tested_text = 'tested: ' ~ tested | join(', ') -%}
    {%- set where = version_source.schema ~ '.' ~ version_source.identifier
        ~ ' of database ' ~ version_source.database -%}
    {%- set relation = adapter.get_relation(
        database=version_source.database,
        schema=version_source.schema,
        identifier=version_source.identifier,
    ) -%}
    {%- if relation is none -%}
        {%- do exceptions.warn(
            'MLflow schema check: table ' ~ where ~ ' does not exist, so MLflow has not created its'
            ~ ' tables in schema ' ~ version_source.schema ~ ' (run `ml-eval train` first, or set'
            ~ ' var mlflow_schema to the schema MLflow uses); ' ~ tested_text
        ) -%}
        {{- return('') -}}
    {%- endif -%}
    {%- set revisions = run_query('select version_num from ' ~ relation ~ ' order by 1').columns[0].values() | list -%}
    {%- set untested = revisions | reject('in', tested_revisions) | list -%}
    {%- if revisions | length == 0 -%}
        {%- do exceptions.warn(
            'MLflow schema check: ' ~ where ~ ' is empty, so the MLflow schema revision is unknown; '
            ~ tested_text
        ) -%}
    {%- elif untested | length > 0 -%}
        {%- do exceptions.warn(
            'MLflow schema check: revision ' ~ untested | join(', ') ~ ' in ' ~ where
            ~ ' is not one this project is tested against (' ~ tested_text ~ '); its tables may'
            ~ ' differ from what the staging models read: run tests_python/test_mlflow_versions.py'
            ~ ' against that MLflow release, then add the revision to var mlflow_tested_revisions'
        ) -%}
    {%- else -%}
        {%- do log(
            'MLflow schema revision ' ~ revisions | join(', ') ~ ' ('
            ~ tested_revisions[revisions[0]] ~ ') in ' ~ where ~ ': tested',
            info=true
        ) -%}
    {%- endif -%}
{% endmacro %}
