{#- Keeps the candidate pairs of one matching step that are one-to-one: a CRM account with
    several ERP candidates (or the reverse) keeps none of them, so an ambiguous match never
    claims a customer; the account stays unmatched and goes to mart_account_match_review. -#}
{% macro q2c_one_to_one(candidates) -%}
    {{ return(adapter.dispatch('q2c_one_to_one', 'q2c')(candidates)) }}
{%- endmacro %}

{% macro default__q2c_one_to_one(candidates) -%}
    select
        crm_ref,
        erp_ref,
        match_method

    from (

        select
            crm_ref,
            erp_ref,
            match_method,
            count(*) over (partition by crm_ref) as crm_candidates,
            count(*) over (partition by erp_ref) as erp_candidates

        from {{ candidates }}

    ) as counted

    where crm_candidates = 1 and erp_candidates = 1
{%- endmacro %}
