{#- Why the marts may not be published now, as a list of short reasons (empty: they may),
    read from ml_eval_node_status, not from one invocation's results: every model, seed,
    snapshot and test of this package (never a root project's) must have passed when it last
    ran, with the definition it has now, and after every node it reads last ran. So a build
    whose failures a `dbt retry` then fixes publishes at the end of the retry, and a `dbt run`
    without the tests of what it rebuilt does not publish. -#}
{% macro publish_decision() %}
    {% set good = ['success', 'pass'] + ([] if flags.WARN_ERROR else ['warn']) %}
    {% set query %}
        select unique_id, status, checksum, extract(epoch from recorded_at)::float8
        from {{ publish_state_relation('ml_eval_node_status') }}
    {% endset %}
    {% set recorded = {} %}
    {% for row in run_query(query).rows %}
        {% do recorded.update({row[0]: {'status': row[1], 'checksum': row[2], 'at': row[3]}}) %}
    {% endfor %}
    {% set problems = [] %}
    {% for node in graph.nodes.values()
        if node.package_name == 'ml_eval' and node.resource_type in ('model', 'seed', 'snapshot', 'test') %}
        {% set last = recorded.get(node.unique_id) %}
        {% if last is none %}
            {% do problems.append(node.name ~ ' never ran') %}
        {% elif last.status not in good %}
            {% do problems.append(node.name ~ ': ' ~ last.status) %}
        {% elif last.checksum != node.checksum.checksum %}
            {% do problems.append(node.name ~ ' changed since it last ran') %}
        {% else %}
            {% for parent in node.depends_on.nodes
                if parent in recorded and recorded[parent].at > last.at %}
                {% do problems.append(node.name ~ ' did not run after ' ~ parent.split('.')[-1]) %}
            {% endfor %}
        {% endif %}
    {% endfor %}
    {{ return(problems) }}
{% endmacro %}
