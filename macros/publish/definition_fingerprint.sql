{#- What a model's rows are made from: an md5 over the checksums of its SQL and of every
    model, seed and snapshot upstream of it (their SQL, or a seed's file). -#}
{% macro definition_fingerprint(node) %}
    {% set found = {} %}
    {% do collect_checksums(node.unique_id, found) %}
    {% set parts = [] %}
    {% for unique_id in found | sort %}
        {% do parts.append(unique_id ~ '=' ~ found[unique_id]) %}
    {% endfor %}
    {{ return(local_md5(parts | join(','))) }}
{% endmacro %}
