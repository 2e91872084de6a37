{#- The one ordering of every rank of rpt_model_leaderboard, best first: a partial
    evaluation after every full one, then macro F1, accuracy, log loss (lower is better),
    and the earlier run. int_run_references picks an experiment's top run with it too (it
    cannot read the leaderboard, which reads the comparisons). The columns are those of the
    leaderboard, unqualified. -#}
{% macro leaderboard_ranking() -%}
    is_partial_evaluation asc, f1_macro desc, accuracy desc, log_loss asc nulls last, started_at asc
{%- endmacro %}
