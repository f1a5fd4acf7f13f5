{#- Keeps the candidate pairs of one matching step that are one-to-one: a CRM account with
    several ERP candidates (or the reverse) keeps only its lowest id, and a pair survives only
    when it is first on both sides, so an ambiguous name never claims two customers. -#}
{% macro q2c_one_to_one(candidates) -%}
    select
        crm_account_id,
        erp_customer_id,
        match_method

    from (

        select
            crm_account_id,
            erp_customer_id,
            match_method,
            row_number() over (
                partition by crm_account_id order by erp_customer_id
            ) as crm_rank,
            row_number() over (
                partition by erp_customer_id order by crm_account_id
            ) as erp_rank

        from {{ candidates }}

    ) as ranked

    where crm_rank = 1 and erp_rank = 1
{%- endmacro %}
