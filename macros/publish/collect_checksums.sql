{#- Adds to `found` (unique_id -> checksum) the node and every node upstream of it. -#}
{% macro collect_checksums(unique_id, found) %}
    {% set node = graph.nodes.get(unique_id) %}
    {% if node is not none and unique_id not in found %}
        {% do found.update({unique_id: node.checksum.checksum}) %}
        {% for parent in node.depends_on.nodes %}
            {% do collect_checksums(parent, found) %}
        {% endfor %}
    {% endif %}
{% endmacro %}
