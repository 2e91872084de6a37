{#- The run tag keys a var names, in order of preference (key_list). `renamed_from`, the var's
    old name, still set stops the compilation with one line. -#}
{% macro run_tag_keys(var_name, renamed_from=none) %}
    {% if renamed_from is not none and var(renamed_from, none) is not none %}
        {{ exceptions.raise_compiler_error(
            'var ' ~ renamed_from ~ ' is now ' ~ var_name ~ ': a list of tag keys in order of preference, e.g. ['
            ~ var(renamed_from) ~ ']'
        ) }}
    {% endif %}
    {{ return(key_list(var(var_name), 'var ' ~ var_name)) }}
{% endmacro %}
