{#- A var's value as a list of keys: a list of strings as it is, one string as a list of one,
    none as an empty list; anything else stops the compilation with one line naming `where`. -#}
{% macro key_list(value, where) %}
    {% if value is none %}
        {{ return([]) }}
    {% elif value is string %}
        {{ return([value]) }}
    {% elif value is mapping or value is not iterable %}
        {{ exceptions.raise_compiler_error(where ~ ' must be a list of keys, not ' ~ tojson(value)) }}
    {% endif %}
    {% for key in value if key is not string or not key %}
        {{ exceptions.raise_compiler_error(where ~ ' must be a list of keys: ' ~ tojson(key) ~ ' is not one') }}
    {% endfor %}
    {{ return(value | list) }}
{% endmacro %}
