"""A quote-to-cash raw layer of any size, generated inside DuckDB in the shape ingest lands.

The dbt benchmark needs 200,000 invoices with a million lines in seconds, so nothing is
built row by row in Python: every value comes from DuckDB's `range()` and `hash()`, which
makes the data the same on every run of the same size. Tables keep the columns of
`q2c.sources.tables` (every value text, plus `_q2c_source_file`, `_q2c_source_row` and
`_q2c_loaded_at`), exactly as `q2c.sources.landing` writes them.

What the numbers promise, so the marts have real work to do and the dbt tests pass:
- each invoice's total is its sales lines, less its discount, plus its tax line;
- a cash payment's invoice lines plus its unapplied amount make its total (some pay
  several invoices, some two instalments of one, some only part; some stay unapplied);
- a credit memo is applied by a payment of total 0 with one invoice line and one credit
  memo line of the same amount, as QuickBooks records it;
- an invoice's balance is its total less everything applied to it, never below zero, and
  a customer's balance is the sum of its live invoices' balances;
- every date falls on or before the as-of date; money is written in the currency's minor
  units (JPY 0, KWD 3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from q2c.delivery.export import WAREHOUSE_DDL as DELIVERY_WAREHOUSE_DDL
from q2c.review import ensure_review_warehouse_tables
from q2c.sources.schema import DEFAULT_SOURCES, RAW_TABLES, RawTable

AS_OF = dt.date(2026, 6, 30)
LOADED_AT = dt.datetime(2026, 7, 1, 2, 30)


@dataclass(frozen=True)
class Sizes:
    """How many rows each table gets; everything scales with the number of invoices."""

    invoices: int

    @property
    def accounts(self) -> int:
        return max(10, self.invoices // 10)

    @property
    def customers(self) -> int:
        return self.accounts

    @property
    def contacts(self) -> int:
        return 3 * self.accounts

    @property
    def users(self) -> int:
        return max(3, self.accounts // 200)

    @property
    def opportunities(self) -> int:
        return self.invoices // 4

    @property
    def opportunity_line_items(self) -> int:
        return 3 * self.opportunities

    @property
    def cases(self) -> int:
        return max(1, self.invoices // 20)

    @property
    def invoice_lines(self) -> int:
        return 5 * self.invoices

    @property
    def payments(self) -> int:
        return self.invoices * 3 // 4

    def expected_rows(self) -> dict[str, int]:
        """Row counts fixed by the sizes alone (credit memos depend on the draw)."""
        return {
            "salesforce.account": self.accounts, "salesforce.contact": self.contacts,
            "salesforce.user": self.users, "salesforce.opportunity": self.opportunities,
            "salesforce.opportunity_line_item": self.opportunity_line_items,
            "salesforce.case": self.cases, "quickbooks.customer": self.customers,
            "quickbooks.address": self.customers, "quickbooks.item": 40,
            "quickbooks.term": 4, "quickbooks.invoice": self.invoices,
            "quickbooks.invoice_line": self.invoice_lines,
            "quickbooks.invoice_tax_line": self.invoices,
            "quickbooks.payment": self.payments,
        }


# ---------------------------------------------------------------------------------------
# The plan: typed temporary tables holding every number, in minor units.
# ---------------------------------------------------------------------------------------
_HELPERS = (
    "create or replace temp macro bench_pick(key, salt, n) as cast(hash(key, salt) % n as bigint)",
    # Non-negative minor units as plain decimal text: (123456, 2, 100) -> '1234.56'.
    """create or replace temp macro bench_money(v, mu, unit) as case
        when mu = 0 then cast(v as varchar)
        else cast(v // unit as varchar) || '.' || lpad(cast(v % unit as varchar), mu, '0')
    end""",
    """create or replace temp macro bench_ts(day, key, salt) as strftime(
        cast(day as timestamp) + to_seconds(28800 + bench_pick(key, salt, 36000)),
        '%Y-%m-%d %H:%M:%S')""",
    """create or replace temp macro bench_sf_id(prefix, n) as
        prefix || '5g0' || lpad(cast(n as varchar), 12, '0')""",
)

_PROFILES = """
create temp table bench_profiles as
select *, cast(10 ** minor_units as bigint) as unit
from (values
    (0, 'US', 'United States', 'USD', 2, 825, 'TAX-US-8.25', 'en', 1000, 200000, 1000000,
     'US', 'Inc.', '+1', 'Congress Avenue', 'Austin', 'TX', '78701', 'Chicago', 'IL', '60601'),
    (1, 'DE', 'Germany', 'EUR', 2, 1900, 'TAX-DE-19', 'de', 1000, 200000, 1080000,
     'DE', 'GmbH', '+49', 'Hauptstraße', 'Berlin', 'BE', '10115', 'München', 'BY', '80331'),
    (2, 'FR', 'France', 'EUR', 2, 2000, 'TAX-FR-20', 'fr', 1000, 200000, 1080000,
     'FR', 'SAS', '+33', 'Rue de la République', 'Lyon', 'ARA', '69002', 'Paris', 'IDF',
     '75002'),
    (3, 'GB', 'United Kingdom', 'GBP', 2, 2000, 'TAX-GB-20', 'en', 1000, 150000, 1270000,
     'GB', 'Ltd', '+44', 'High Street', 'London', 'LND', 'EC1A 1BB', 'Manchester', 'MAN',
     'M1 1AE'),
    (4, 'CH', 'Switzerland', 'CHF', 2, 810, 'TAX-CH-8.1', 'de', 1000, 200000, 1120000,
     'CHE-', 'AG', '+41', 'Bahnhofstrasse', 'Zürich', 'ZH', '8001', 'Basel', 'BS', '4051'),
    (5, 'JP', 'Japan', 'JPY', 0, 1000, 'TAX-JP-10', 'ja', 1000, 300000, 6700,
     'T', 'K.K.', '+81', 'Chuo-dori', 'Tokyo', '13', '100-0001', 'Osaka', '27', '530-0001'),
    (6, 'SE', 'Sweden', 'SEK', 2, 2500, 'TAX-SE-25', 'sv', 10000, 2000000, 95000,
     'SE', 'AB', '+46', 'Drottninggatan', 'Stockholm', 'AB', '111 21', 'Göteborg', 'O',
     '411 03'),
    (7, 'AU', 'Australia', 'AUD', 2, 1000, 'TAX-AU-10', 'en', 1500, 300000, 660000,
     'ABN ', 'Pty Ltd', '+61', 'George Street', 'Sydney', 'NSW', '2000', 'Melbourne',
     'VIC', '3000'),
    (8, 'KW', 'Kuwait', 'KWD', 3, 0, 'TAX-KW-0', 'en', 3000, 600000, 3250000,
     'KW', 'W.L.L.', '+965', 'Gulf Road', 'Kuwait City', 'KU', '13001', 'Hawalli', 'HA',
     '32001'),
    (9, 'CA', 'Canada', 'CAD', 2, 500, 'TAX-CA-5', 'en', 1000, 200000, 730000,
     'CA', 'Ltd.', '+1', 'King Street', 'Toronto', 'ON', 'M5H 2N2', 'Vancouver', 'BC',
     'V6B 1A1')
) as t(slot, country_code, country_name, currency, minor_units, tax_bp, tax_rate_id,
       language, price_lo, price_span, rate_micro, tax_prefix, legal_form, phone_prefix,
       street, city_1, region_1, postal_1, city_2, region_2, postal_2)
"""

_WORDS_1 = ("['Nordwind', 'Alpen', 'Sakura', 'Harbor', 'Lumen', 'Vektor', 'Cobalt', "
            "'Meridian', 'Polar', 'Aurora', 'Granite', 'Juniper', 'Kestrel', 'Orion', "
            "'Quartz', 'Saffron', 'Tidewater', 'Verdant', 'Zephyr', 'Atlas', 'Beacon', "
            "'Cedar', 'Delta', 'Ember']")
_WORDS_2 = ("['Logistics', 'Foods', 'Analytics', 'Tools', 'Textiles', 'Robotics', 'Energy', "
            "'Pharma', 'Media', 'Systems', 'Metals', 'Labs', 'Freight', 'Software', "
            "'Materials', 'Retail']")
_FIRST = ("['Anna', 'Lukas', 'Yuki', 'Sofia', 'James', 'Camille', 'Erik', 'Mia', 'Omar', "
          "'Chloe', 'Hiro', 'Lena', 'Noah', 'Fatima', 'Oliver', 'Ingrid']")
_LAST = ("['Schmidt', 'Tanaka', 'Dubois', 'Smith', 'Andersson', 'Müller', 'Brown', 'Sato', "
         "'Martin', 'Nilsson', 'Wilson', 'Al-Sabah', 'Meier', 'Taylor', 'Lefèvre', 'Kato']")

_TERMS = """
create temp table bench_terms as
select * from (values
    (1, 'Due on receipt', 0), (2, 'Net 15', 15), (3, 'Net 30', 30), (4, 'Net 60', 60)
) as t(term_id, term_name, term_days)
"""

_ITEMS = """
create temp table bench_items as
select
    n as item_id,
    ['Platform licence', 'Support plan', 'Implementation day', 'Training seat',
     'Data connector', 'Storage TB', 'API calls (1M)', 'Consulting hour'][1 + (n - 1) % 8]
        || ' ' || ['Basic', 'Standard', 'Premium', 'Enterprise', 'Plus'][1 + (n - 1) // 8]
        as item_name,
    ['Software', 'Services'][1 + (n - 1) % 2] as category,
    5000 + bench_pick(n, 'item price', 200000) as price_usd_cents
from range(1, 41) as t(n)
"""

_CUSTOMERS = f"""
create temp table bench_customers as
with base as (
    select
        n,
        bench_pick(n, 'country', 10) as slot,
        bench_pick(n, 'link', 10) as link_roll,
        {_WORDS_1}[1 + bench_pick(n, 'w1', 24)] as w1,
        {_WORDS_2}[1 + bench_pick(n, 'w2', 16)] as w2,
        {_WORDS_1}[1 + bench_pick(n, 'crm w1', 24)] as crm_w1,
        {_WORDS_2}[1 + bench_pick(n, 'crm w2', 16)] as crm_w2,
        {_FIRST}[1 + bench_pick(n, 'first', 16)] as first_name,
        {_LAST}[1 + bench_pick(n, 'last', 16)] as last_name,
        [1, 2, 3, 3, 3, 3, 4, 4][1 + bench_pick(n, 'term', 8)] as term_id,
        lpad(cast(bench_pick(n, 'vat', 1000000000) as varchar), 9, '0') as tax_digits,
        case when n > 50 and bench_pick(n, 'parent', 25) = 0
            then 1 + bench_pick(n, 'parent of', 50) end as parent_n,
        bench_pick(n, 'channel', 100) as channel_roll,
        getvariable('bench_as_of') - 730 - cast(bench_pick(n, 'since', 1500) as integer)
            as since
    from range(1, getvariable('bench_accounts') + 1) as t(n)
)
select
    base.*,
    profiles.* exclude (slot),
    terms.term_days,
    case
        when link_roll <= 6 then 'external_id' when link_roll = 7 then 'tax_id'
        when link_roll = 8 then 'name_domain' else 'split'
    end as link,
    w1 || ' ' || w2 || ' ' || legal_form as erp_name,
    lower(w1 || '-' || w2) || '-' || n || '.example' as erp_domain,
    tax_prefix || tax_digits as tax_id,
    case when link_roll = 9 then crm_w1 || ' ' || crm_w2 || ' ' || legal_form
        else w1 || ' ' || w2 || ' ' || legal_form end as crm_name,
    case when link_roll = 9 then lower(crm_w1 || '-' || crm_w2) || '-' || n || '.example.net'
        else lower(w1 || '-' || w2) || '-' || n || '.example' end as crm_domain,
    case when bench_pick(n, 'city', 2) = 0 then city_1 else city_2 end as city,
    case when bench_pick(n, 'city', 2) = 0 then region_1 else region_2 end as region,
    case when bench_pick(n, 'city', 2) = 0 then postal_1 else postal_2 end as postal_code,
    case when channel_roll < 80 then 'email' when channel_roll < 95 then 'portal'
        else 'edi' end as channel
from base
join bench_profiles as profiles using (slot)
join bench_terms as terms using (term_id)
"""

# Invoices come in pairs whose line counts add up to ten (5 + s and 5 - s), so the lines
# number exactly five per invoice while one invoice has 1 and another 9.
_INVOICES = """
create temp table bench_invoices as
with base as (
    select
        i,
        1 + bench_pick(i, 'customer', getvariable('bench_accounts')) as n,
        getvariable('bench_as_of') - cast(bench_pick(i, 'issue', 730) as integer)
            as issue_date,
        case
            when i % 2 = 1 and i = getvariable('bench_invoices') then 5
            when i % 2 = 1 then 5 + bench_pick((i + 1) // 2, 'lines', 5)
            else 5 - bench_pick(i // 2, 'lines', 5)
        end as n_lines,
        bench_pick(i, 'discount', 100) < 15 as discount_drawn,
        bench_pick(i, 'subtotal', 100) < 60 as subtotal_drawn,
        5 + 5 * bench_pick(i, 'discount pct', 2) as discount_pct
    from range(1, getvariable('bench_invoices') + 1) as t(i)
)
select
    base.* exclude (discount_drawn, subtotal_drawn),
    discount_drawn and n_lines >= 2 as has_discount,
    discount_drawn and subtotal_drawn and n_lines >= 3 as has_subtotal,
    customers.currency, customers.minor_units, customers.unit, customers.tax_bp,
    customers.tax_rate_id, customers.rate_micro, customers.price_lo, customers.price_span,
    customers.term_id, customers.term_days,
    issue_date + customers.term_days as due_date
from base
join bench_customers as customers using (n)
"""

_LINES = """
create temp table bench_lines as
with exploded as (
    select
        i, n_lines, has_discount, has_subtotal, price_lo, price_span,
        unnest(range(n_lines)) as idx
    from bench_invoices
)
select
    i,
    idx,
    case
        when has_discount and idx = n_lines - 1 then 'DiscountLineDetail'
        when has_subtotal and idx = n_lines - 2 then 'SubTotalLineDetail'
        else 'SalesItemLineDetail'
    end as detail_type,
    1 + bench_pick(i * 16 + idx, 'item', 40) as item_id,
    1 + bench_pick(i * 16 + idx, 'quantity', 12) as quantity,
    price_lo + bench_pick(i * 16 + idx, 'price', price_span) as price_minor
from exploded
"""

_AMOUNTS = """
create temp table bench_amounts as
with sales as (
    select i, cast(sum(quantity * price_minor) as bigint) as subtotal
    from bench_lines
    where detail_type = 'SalesItemLineDetail'
    group by i
),
discounted as (
    select
        invoices.*,
        sales.subtotal,
        case when has_discount then (sales.subtotal * discount_pct + 50) // 100 else 0 end
            as discount
    from bench_invoices as invoices
    join sales using (i)
)
select
    *,
    subtotal - discount as taxable,
    ((subtotal - discount) * tax_bp + 5000) // 10000 as tax,
    subtotal - discount + ((subtotal - discount) * tax_bp + 5000) // 10000 as total,
    getvariable('bench_as_of') - issue_date as age,
    case
        when getvariable('bench_as_of') - issue_date < 7 then 'open'
        when bench_pick(i, 'settle', 100) < 55 then 'full'
        when bench_pick(i, 'settle', 100) < 60 then 'instalments'
        when bench_pick(i, 'settle', 100) < 68 then 'partial'
        when bench_pick(i, 'settle', 100) < 71 then 'credited'
        else 'open'
    end as plan
from discounted
"""

# One row per amount applied to an invoice, with the key of the payment that carries it.
# Full payments group up to three invoices of one customer (for three customers in ten).
_ALLOCATIONS = """
create temp table bench_allocations as
with full_plan as (
    select
        amounts.i, amounts.n, amounts.total, amounts.issue_date,
        (row_number() over (partition by amounts.n order by amounts.issue_date, amounts.i)
            - 1) // case when bench_pick(amounts.n, 'multi', 10) < 3
                then 1 + bench_pick(amounts.n, 'group size', 3) else 1 end as grp
    from bench_amounts as amounts
    where plan = 'full'
),
full_groups as (
    select
        n, grp, min(i) as first_i, max(issue_date) as last_issue
    from full_plan
    group by n, grp
),
full_allocations as (
    select
        'full-' || groups.first_i as payment_key,
        plan.i,
        plan.total as amount,
        least(
            getvariable('bench_as_of'),
            groups.last_issue + cast(bench_pick(groups.first_i, 'delay', 46) as integer)
        ) as applied_on,
        row_number() over (partition by groups.first_i order by plan.i) - 1 as line_index,
        false as is_credit
    from full_plan as plan
    join full_groups as groups using (n, grp)
),
instalment_dates as (
    select
        *,
        issue_date + cast(bench_pick(i, 'first delay', least(60, age) + 1) as integer)
            as first_on,
        total * (30 + bench_pick(i, 'first share', 41)) // 100 as first_amount
    from bench_amounts
    where plan = 'instalments'
),
instalments as (
    select 'first-' || i as payment_key, i, first_amount as amount, first_on as applied_on,
        0 as line_index, false as is_credit
    from instalment_dates
    union all
    select 'second-' || i, i, total - first_amount,
        first_on + cast(bench_pick(
            i, 'second delay', least(60, getvariable('bench_as_of') - first_on) + 1
        ) as integer),
        0, false
    from instalment_dates
),
partials as (
    select 'partial-' || i as payment_key, i,
        total * (20 + bench_pick(i, 'share', 71)) // 100 as amount,
        issue_date + cast(bench_pick(i, 'delay', least(90, age) + 1) as integer)
            as applied_on,
        0 as line_index, false as is_credit
    from bench_amounts
    where plan = 'partial'
),
credits as (
    select 'credit-' || i as payment_key, i,
        case when bench_pick(i, 'full credit', 2) = 0 then total else total * 30 // 100 end
            as amount,
        issue_date + cast(bench_pick(i, 'delay', least(30, age) + 1) as integer)
            as applied_on,
        0 as line_index, true as is_credit
    from bench_amounts
    where plan = 'credited'
)
select * from full_allocations
union all select * from instalments
union all select * from partials
union all select * from credits
"""

_CREDIT_MEMOS = """
create temp table bench_credit_memos as
select
    row_number() over (order by applied_on, i) as k,
    allocations.payment_key, allocations.i, allocations.amount, allocations.applied_on,
    amounts.n, amounts.tax * allocations.amount // amounts.total as tax
from bench_allocations as allocations
join bench_amounts as amounts using (i)
where allocations.is_credit
"""

# Every planned payment, then payments on account (nothing applied) until the payment
# count is reached; a few full payments overpay, leaving the rest unapplied.
_PAYMENTS = """
create temp table bench_payments as
with planned as (
    select
        allocations.payment_key,
        min(amounts.n) as n,
        max(allocations.applied_on) as paid_on,
        bool_or(allocations.is_credit) as is_credit,
        cast(sum(allocations.amount) as bigint) as applied,
        min(allocations.i) as first_i
    from bench_allocations as allocations
    join bench_amounts as amounts using (i)
    group by allocations.payment_key
),
with_unapplied as (
    select
        *,
        case when not is_credit and payment_key like 'full-%'
                and bench_pick(first_i, 'overpaid', 100) < 4
            then greatest(1, applied // 50) else 0 end as unapplied
    from planned
),
on_account as (
    select
        'account-' || u as payment_key,
        1 + bench_pick(u, 'on account', getvariable('bench_accounts')) as n,
        getvariable('bench_as_of') - cast(bench_pick(u, 'on account date', 365) as integer)
            as paid_on,
        false as is_credit,
        0 as applied,
        null as first_i,
        customers.price_lo * (1 + bench_pick(u, 'on account amount', 20)) as unapplied
    from range(
        1,
        greatest(0, getvariable('bench_payments') - (select count(*) from planned)) + 1
    ) as t(u)
    join bench_customers as customers
        on customers.n = 1 + bench_pick(u, 'on account', getvariable('bench_accounts'))
),
all_payments as (
    select * from with_unapplied
    union all
    select * from on_account
)
select
    row_number() over (order by paid_on, payment_key) as p,
    all_payments.*,
    case when is_credit then 0 else applied + unapplied end as total,
    customers.currency, customers.minor_units, customers.unit, customers.rate_micro
from all_payments
join bench_customers as customers using (n)
"""

_BALANCES = """
create temp table bench_balances as
select
    amounts.*,
    amounts.total - coalesce(applied.amount, 0) as balance,
    coalesce(applied.last_on, amounts.issue_date) as last_applied_on,
    amounts.plan = 'open' and bench_pick(amounts.i, 'deleted', 500) = 0 as is_deleted
from bench_amounts as amounts
left join (
    select i, cast(sum(amount) as bigint) as amount, max(applied_on) as last_on
    from bench_allocations
    group by i
) as applied using (i)
"""

_OPPORTUNITIES = """
create temp table bench_opportunities as
with base as (
    select
        o,
        2 * o - 1 as i,
        bench_pick(o, 'billed', 10) < 8 as billed,
        bench_pick(o, 'stage', 100) as stage_roll
    from range(1, getvariable('bench_opportunities') + 1) as t(o)
)
select
    base.*,
    customers.n, customers.currency, customers.unit, customers.minor_units,
    customers.price_lo, customers.price_span, customers.crm_name,
    case
        when billed then 'Closed Won' when stage_roll < 30 then 'Closed Won'
        when stage_roll < 50 then 'Closed Lost' when stage_roll < 75 then 'Negotiation'
        else 'Prospecting'
    end as stage_name,
    case
        when billed then invoices.issue_date - cast(bench_pick(o, 'close', 20) as integer)
        when stage_roll < 50
            then getvariable('bench_as_of') - 1 - cast(bench_pick(o, 'close', 400) as integer)
        else getvariable('bench_as_of') + 10 + cast(bench_pick(o, 'close', 80) as integer)
    end as close_date,
    1 + bench_pick(o, 'owner', getvariable('bench_users')) as owner
from base
join bench_invoices as invoices using (i)
join bench_customers as customers
    on customers.n = case when base.billed then invoices.n
        else 1 + bench_pick(base.o, 'account', getvariable('bench_accounts')) end
"""

_OPPORTUNITY_LINES = """
create temp table bench_opportunity_lines as
select
    3 * (o - 1) + k + 1 as line_n,
    o,
    1 + bench_pick(o * 4 + k, 'item', 40) as item_id,
    1 + bench_pick(o * 4 + k, 'quantity', 12) as quantity,
    price_lo + bench_pick(o * 4 + k, 'price', price_span) as price_minor,
    unit, minor_units
from bench_opportunities, range(3) as t(k)
"""

# Cases: billing disputes and questions name an invoice and are opened after it; the
# rest are support problems of a random account.
_CASES = """
create temp table bench_cases as
with base as (
    select
        k,
        1 + bench_pick(k, 'invoice', getvariable('bench_invoices')) as i,
        bench_pick(k, 'kind', 100) as kind_roll,
        bench_pick(k, 'closed', 100) < 60 as closed_drawn
    from range(1, getvariable('bench_cases') + 1) as t(k)
),
dated as (
    select
        base.*,
        case when kind_roll < 60 then invoices.n
            else 1 + bench_pick(k, 'account', getvariable('bench_accounts')) end as n,
        case when kind_roll < 60 then 100000 + base.i end as doc_number,
        case when kind_roll < 60
            then invoices.issue_date + cast(bench_pick(
                k, 'opened', getvariable('bench_as_of') - invoices.issue_date + 1
            ) as integer)
            else getvariable('bench_as_of') - cast(bench_pick(k, 'opened', 365) as integer)
        end as opened_on
    from base
    join bench_invoices as invoices using (i)
)
select
    *,
    case when kind_roll < 35 then 'Billing Dispute' when kind_roll < 60 then 'Question'
        when kind_roll < 85 then 'Problem' else 'Feature Request' end as case_type,
    case when closed_drawn
            and opened_on + cast(1 + bench_pick(k, 'closed after', 20) as integer)
                <= getvariable('bench_as_of')
        then opened_on + cast(1 + bench_pick(k, 'closed after', 20) as integer) end
        as closed_on
from dated
"""

_PLAN = (_PROFILES, _TERMS, _ITEMS, _CUSTOMERS, _INVOICES, _LINES, _AMOUNTS, _ALLOCATIONS,
         _CREDIT_MEMOS, _PAYMENTS, _BALANCES, _OPPORTUNITIES, _OPPORTUNITY_LINES, _CASES)


# ---------------------------------------------------------------------------------------
# The raw tables: for each, where its rows come from, their order, and each column's text.
# A column of the catalog that is not given here lands empty, as a missing column does.
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RawRows:
    relation: str
    order_by: str
    values: dict[str, str]


_SYNCED = "bench_ts(getvariable('bench_as_of') + 1, {key}, 'synced')"


def _synced(key: str) -> str:
    return _SYNCED.format(key=key)


_SALESFORCE = {
    "account": _RawRows("bench_customers", "n", {
        "id": "bench_sf_id('001', n)",
        "name": "crm_name",
        "account_number": "case when link = 'external_id' then cast(n as varchar) end",
        "parent_id": "bench_sf_id('001', parent_n)",
        "type": "case when link = 'split' then 'Prospect' else 'Customer' end",
        "industry": "['Manufacturing', 'Retail', 'Technology', 'Healthcare', 'Logistics', "
                    "'Finance'][1 + bench_pick(n, 'industry', 6)]",
        "website": "['https://www.', 'www.', 'http://', ''][1 + bench_pick(n, 'www', 4)]"
                   " || crm_domain",
        "phone": "phone_prefix || ' ' || (10 + bench_pick(n, 'phone', 90)) || ' '"
                 " || (1000000 + bench_pick(n, 'phone 2', 9000000))",
        "owner_id": "bench_sf_id('005', 1 + bench_pick(n, 'owner', getvariable('bench_users')))",
        "billing_street": "(1 + bench_pick(n, 'street', 200)) || ' ' || street",
        "billing_city": "city",
        "billing_postal_code": "postal_code",
        "billing_state": "region",
        "billing_country": "country_name",
        "billing_country_code": "country_code",
        "currency_iso_code": "currency",
        "vat_number_c": """case
            when link = 'external_id' then tax_id
            when link = 'tax_id' then tax_prefix || ' ' || substr(tax_digits, 1, 3) || '.'
                || substr(tax_digits, 4, 3) || '.' || substr(tax_digits, 7, 3)
        end""",
        "preferred_language_c": "language",
        "segment_c": "['Enterprise', 'Mid Market', 'Mid Market', 'SMB', 'SMB', 'SMB']"
                     "[1 + bench_pick(n, 'segment', 6)]",
        "invoice_delivery_channel_c": "channel",
        "einvoice_format_c": "case when channel = 'edi' then case when country_code = 'US' "
                             "then 'x12_810' else 'peppol_ubl' end end",
        "peppol_participant_id_c": "case when channel = 'edi' and country_code <> 'US' "
                                   "then '0088:' || lpad(cast(n as varchar), 13, '0') end",
        "x12_partner_c": "case when channel = 'edi' and country_code = 'US' "
                         "then 'partner-' || n end",
        "created_date": "bench_ts(since, n, 'account created')",
        "last_modified_date": "bench_ts(getvariable('bench_as_of') - "
                              "cast(bench_pick(n, 'account modified', 200) as integer), n, "
                              "'account modified')",
        "is_deleted": "'false'",
        "_fivetran_synced": _synced("n"),
    }),
    "contact": _RawRows(
        "(select range as j, customers.* from range(1, 3 * getvariable('bench_accounts') + 1)"
        " join bench_customers as customers on customers.n = (range - 1) // 3 + 1)", "j", {
            "id": "bench_sf_id('003', j)",
            "account_id": "bench_sf_id('001', n)",
            "first_name": "case when j % 3 = 1 then first_name "
                          f"else {_FIRST}[1 + bench_pick(j, 'first', 16)] end",
            "last_name": "case when j % 3 = 1 then last_name "
                         f"else {_LAST}[1 + bench_pick(j, 'last', 16)] end",
            "name": "case when j % 3 = 1 then first_name || ' ' || last_name "
                    f"else {_FIRST}[1 + bench_pick(j, 'first', 16)] || ' ' || "
                    f"{_LAST}[1 + bench_pick(j, 'last', 16)] end",
            "email": "strip_accents(lower(case when j % 3 = 1 then first_name || '.' || "
                     f"last_name else {_FIRST}[1 + bench_pick(j, 'first', 16)] || '.' || "
                     f"{_LAST}[1 + bench_pick(j, 'last', 16)] end)) || '@' || crm_domain",
            "title": "['Accounts Payable', 'CFO', 'Procurement Manager'][1 + (j - 1) % 3]",
            "phone": "phone_prefix || ' ' || (10 + bench_pick(j, 'phone', 90)) || ' '"
                     " || (1000000 + bench_pick(j, 'phone 2', 9000000))",
            "mailing_country_code": "country_code",
            "is_billing_contact_c": "case when j % 3 = 1 then 'true' else 'false' end",
            "has_opted_out_of_email": "case when j % 3 = 1 and bench_pick(j, 'opt out', 50) = 0"
                                      " then 'true' else 'false' end",
            "created_date": "bench_ts(since + cast(bench_pick(j, 'since', 60) as integer), j, "
                            "'contact created')",
            "last_modified_date": "bench_ts(getvariable('bench_as_of') - "
                                  "cast(bench_pick(j, 'modified', 300) as integer), j, "
                                  "'contact modified')",
            "is_deleted": "case when j % 3 = 0 and bench_pick(j, 'deleted', 50) = 0 "
                          "then 'true' else 'false' end",
            "_fivetran_synced": _synced("j"),
        }),
    "user": _RawRows("range(1, getvariable('bench_users') + 1) as t(u)", "u", {
        "id": "bench_sf_id('005', u)",
        "name": f"{_FIRST}[1 + bench_pick(u, 'first', 16)] || ' ' || "
                f"{_LAST}[1 + bench_pick(u, 'last', 16)]",
        "email": f"strip_accents(lower({_FIRST}[1 + bench_pick(u, 'first', 16)] || '.' || "
                 f"{_LAST}[1 + bench_pick(u, 'last', 16)])) || u || '@q2c-seller.example'",
        "is_active": "case when u = getvariable('bench_users') and u >= 4 then 'false' "
                     "else 'true' end",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("u"),
    }),
    "opportunity": _RawRows(
        "(select opportunities.*, lines.amount from bench_opportunities as opportunities "
        "join (select o, cast(sum(quantity * price_minor) as bigint) as amount "
        "from bench_opportunity_lines "
        "group by o) as lines using (o))", "o", {
            "id": "bench_sf_id('006', o)",
            "account_id": "bench_sf_id('001', n)",
            "name": "crm_name || ' - ' || ['New business', 'Renewal', 'Upsell']"
                    "[1 + bench_pick(o, 'kind', 3)] || ' ' || year(close_date)",
            "amount": "bench_money(amount, minor_units, unit)",
            "currency_iso_code": "currency",
            "close_date": "strftime(close_date, '%Y-%m-%d')",
            "created_date": "bench_ts(least(close_date, getvariable('bench_as_of')) - 10 - "
                            "cast(bench_pick(o, 'created', 80) as integer), o, 'created')",
            "stage_name": "stage_name",
            "is_closed": "case when stage_name like 'Closed%' then 'true' else 'false' end",
            "is_won": "case when stage_name = 'Closed Won' then 'true' else 'false' end",
            "owner_id": "bench_sf_id('005', owner)",
            "type": "['New Business', 'Renewal', 'Upsell'][1 + bench_pick(o, 'kind', 3)]",
            "last_modified_date": "bench_ts(least(close_date, getvariable('bench_as_of')), o, "
                                  "'modified')",
            "is_deleted": "'false'",
            "_fivetran_synced": _synced("o"),
        }),
    "opportunity_line_item": _RawRows(
        "(select lines.*, items.item_name from bench_opportunity_lines as lines "
        "join bench_items as items using (item_id))", "line_n", {
            "id": "bench_sf_id('00k', line_n)",
            "opportunity_id": "bench_sf_id('006', o)",
            "product_2_id": "bench_sf_id('01t', item_id)",
            "product_code": "'SKU-' || lpad(cast(item_id as varchar), 4, '0')",
            "name": "item_name",
            "description": "item_name",
            "quantity": "cast(quantity as varchar)",
            "unit_price": "bench_money(price_minor, minor_units, unit)",
            "list_price": "bench_money(price_minor, minor_units, unit)",
            "total_price": "bench_money(quantity * price_minor, minor_units, unit)",
            "created_date": "bench_ts(getvariable('bench_as_of') - 400, line_n, 'created')",
            "is_deleted": "'false'",
            "_fivetran_synced": _synced("line_n"),
        }),
    "case": _RawRows("bench_cases", "k", {
        "id": "bench_sf_id('500', k)",
        "account_id": "bench_sf_id('001', n)",
        "contact_id": "bench_sf_id('003', 3 * (n - 1) + 1)",
        "case_number": "lpad(cast(1000 + k as varchar), 8, '0')",
        "subject": """case
            when case_type = 'Billing Dispute'
                then 'Invoice ' || doc_number || ': amount does not match our order'
            when doc_number is not null then 'Please resend invoice ' || doc_number
            else 'Connector sync stopped'
        end""",
        "type": "case_type",
        "reason": "case when case_type = 'Billing Dispute' then 'Pricing' "
                  "when case_type = 'Question' then 'Invoice copy' else 'Technical' end",
        "status": "case when closed_on is not null then 'Closed' "
                  "else ['New', 'Working', 'Escalated'][1 + bench_pick(k, 'status', 3)] end",
        "priority": "['Low', 'Medium', 'High'][1 + bench_pick(k, 'priority', 3)]",
        "origin": "['Email', 'Web', 'Phone'][1 + bench_pick(k, 'origin', 3)]",
        "is_closed": "case when closed_on is not null then 'true' else 'false' end",
        "created_date": "bench_ts(opened_on, k, 'opened')",
        "closed_date": "bench_ts(closed_on, k, 'closed')",
        "invoice_number_c": "cast(doc_number as varchar)",
        "is_deleted": "'false'",
        "_fivetran_synced": _synced("k"),
    }),
}

_CUSTOMER_BALANCE = (
    "(select customers.*, coalesce(open_items.balance, 0) as balance from bench_customers "
    "as customers left join (select n, cast(sum(balance) as bigint) as balance "
    "from bench_balances "
    "where not is_deleted group by n) as open_items using (n))"
)

_QUICKBOOKS = {
    "customer": _RawRows(_CUSTOMER_BALANCE, "n", {
        "id": "cast(n as varchar)",
        "display_name": "case when link = 'name_domain' then upper(w1 || ' ' || w2) || ', '"
                        " || legal_form else erp_name end",
        "company_name": "case when link = 'name_domain' then upper(w1 || ' ' || w2) || ', '"
                        " || legal_form else erp_name end",
        "fully_qualified_name": "erp_name",
        "given_name": "first_name",
        "family_name": "last_name",
        "email": "'ap@' || erp_domain",
        "website": "case when bench_pick(n, 'erp www', 2) = 0 then 'https://' || erp_domain "
                   "else 'www.' || erp_domain end",
        "currency_id": "currency",
        "active": "'true'",
        "balance": "bench_money(balance, minor_units, unit)",
        "bill_address_id": "cast(50000 + n as varchar)",
        "parent_customer_id": "cast(parent_n as varchar)",
        "preferred_delivery_method": "['Email', 'Email', 'Email', 'Email', 'Email', 'Email', "
                                     "'Email', 'Email', 'Print', 'None']"
                                     "[1 + bench_pick(n, 'delivery', 10)]",
        "sales_term_id": "cast(term_id as varchar)",
        "taxable": "case when tax_bp > 0 then 'true' else 'false' end",
        "primary_tax_identifier": "case when link <> 'name_domain' "
                                  "or bench_pick(n, 'erp vat', 2) = 0 then tax_id end",
        "created_at": "bench_ts(since + 5 + cast(bench_pick(n, 'erp since', 20) as integer), "
                      "n, 'customer created')",
        "updated_at": "bench_ts(getvariable('bench_as_of') - "
                      "cast(bench_pick(n, 'customer updated', 30) as integer), n, 'updated')",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("n"),
    }),
    "address": _RawRows("bench_customers", "n", {
        "id": "cast(50000 + n as varchar)",
        "line_1": "(1 + bench_pick(n, 'street', 200)) || ' ' || street",
        "line_2": "case when bench_pick(n, 'floor', 4) = 0 "
                  "then 'Floor ' || (1 + bench_pick(n, 'floor no', 20)) end",
        "city": "city",
        "country": "country_name",
        "country_sub_division_code": "region",
        "postal_code": "postal_code",
        "_fivetran_synced": _synced("n"),
    }),
    "item": _RawRows("bench_items", "item_id", {
        "id": "cast(item_id as varchar)",
        "name": "item_name",
        "fully_qualified_name": "category || ':' || item_name",
        "description": "item_name || ' [SKU-' || lpad(cast(item_id as varchar), 4, '0') || ']'",
        "type": "'Service'",
        "unit_price": "bench_money(price_usd_cents, 2, 100)",
        "active": "'true'",
        "created_at": "bench_ts(getvariable('bench_as_of') - 2500, item_id, 'created')",
        "updated_at": "bench_ts(getvariable('bench_as_of') - 2500, item_id, 'created')",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("item_id"),
    }),
    "term": _RawRows("bench_terms", "term_id", {
        "id": "cast(term_id as varchar)",
        "name": "term_name",
        "type": "'STANDARD'",
        "due_days": "cast(term_days as varchar)",
        "active": "'true'",
        "created_at": "bench_ts(getvariable('bench_as_of') - 2500, term_id, 'created')",
        "updated_at": "bench_ts(getvariable('bench_as_of') - 2500, term_id, 'created')",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("term_id"),
    }),
    "invoice": _RawRows(
        "(select balances.*, customers.erp_domain, customers.language, billed.o "
        "from bench_balances "
        "as balances join bench_customers as customers using (n) "
        "left join (select o, 2 * o - 1 as i from bench_opportunities where billed) "
        "as billed using (i))", "i", {
            "id": "cast(1000 + i as varchar)",
            "doc_number": "cast(100000 + i as varchar)",
            "customer_id": "cast(n as varchar)",
            "transaction_date": "strftime(issue_date, '%Y-%m-%d')",
            "due_date": "strftime(due_date, '%Y-%m-%d')",
            "currency_id": "currency",
            "exchange_rate": "bench_money(rate_micro, 6, 1000000)",
            "total_amount": "bench_money(total, minor_units, unit)",
            "total_tax": "bench_money(tax, minor_units, unit)",
            "balance": "bench_money(balance, minor_units, unit)",
            "home_balance": "bench_money((balance * rate_micro * 100 + unit * 500000) "
                            "// (unit * 1000000), 2, 100)",
            "home_total_amount": "bench_money((total * rate_micro * 100 + unit * 500000) "
                                 "// (unit * 1000000), 2, 100)",
            "billing_email": "'ap@' || erp_domain",
            "billing_address_id": "cast(50000 + n as varchar)",
            "sales_term_id": "cast(term_id as varchar)",
            "customer_memo": "case when language = 'de' then 'Vielen Dank für Ihren Auftrag.' "
                             "else 'Thank you for your business.' end",
            "email_status": "case when age <= 3 then 'NeedToSend' else 'EmailSent' end",
            "apply_tax_after_discount": "'true'",
            "custom_salesforce_opportunity_id": "bench_sf_id('006', o)",
            "created_at": "bench_ts(issue_date, i, 'invoice created')",
            "updated_at": "case when last_applied_on > issue_date "
                          "then bench_ts(last_applied_on, i, 'invoice updated') "
                          "else bench_ts(issue_date, i, 'invoice created') end",
            "_fivetran_deleted": "case when is_deleted then 'true' else 'false' end",
            "_fivetran_synced": _synced("i"),
        }),
    "invoice_line": _RawRows(
        "(select lines.*, amounts.subtotal, amounts.discount, amounts.discount_pct, "
        "amounts.minor_units, amounts.unit, amounts.tax_bp, items.item_name "
        "from bench_lines as lines join bench_amounts as amounts using (i) "
        "join bench_items as items using (item_id))", "i, idx", {
            "invoice_id": "cast(1000 + i as varchar)",
            "index": "cast(idx as varchar)",
            "amount": """bench_money(case detail_type
                when 'SalesItemLineDetail' then quantity * price_minor
                when 'SubTotalLineDetail' then subtotal
                else discount end, minor_units, unit)""",
            "description": "case when detail_type = 'SalesItemLineDetail' then item_name end",
            "detail_type": "detail_type",
            "sales_item_item_id": "case when detail_type = 'SalesItemLineDetail' "
                                  "then cast(item_id as varchar) end",
            "sales_item_quantity": "case when detail_type = 'SalesItemLineDetail' "
                                   "then cast(quantity as varchar) end",
            "sales_item_unit_price": "case when detail_type = 'SalesItemLineDetail' "
                                     "then bench_money(price_minor, minor_units, unit) end",
            "sales_item_tax_code_id": "case when detail_type = 'SalesItemLineDetail' "
                                      "then case when tax_bp > 0 then 'TAX' else 'NON' end end",
            "discount_discount_percent": "case when detail_type = 'DiscountLineDetail' "
                                         "then cast(discount_pct as varchar) end",
            "discount_percent_based": "case when detail_type = 'DiscountLineDetail' "
                                      "then 'true' end",
            "_fivetran_synced": _synced("i"),
        }),
    "invoice_tax_line": _RawRows("bench_amounts", "i", {
        "invoice_id": "cast(1000 + i as varchar)",
        "index": "'0'",
        "amount": "bench_money(tax, minor_units, unit)",
        "net_amount_taxable": "bench_money(taxable, minor_units, unit)",
        "tax_percent": "bench_money(tax_bp, 2, 100)",
        "tax_rate_id": "tax_rate_id",
        "percent_based": "'true'",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("i"),
    }),
    "payment": _RawRows("bench_payments", "p", {
        "id": "cast(2000000 + p as varchar)",
        "customer_id": "cast(n as varchar)",
        "transaction_date": "strftime(paid_on, '%Y-%m-%d')",
        "currency_id": "currency",
        "exchange_rate": "bench_money(rate_micro, 6, 1000000)",
        "total_amount": "bench_money(total, minor_units, unit)",
        "unapplied_amount": "bench_money(case when is_credit then 0 else unapplied end, "
                            "minor_units, unit)",
        "reference_number": "'RMT-' || lpad(cast(p as varchar), 8, '0')",
        "payment_method_id": "case when is_credit then null "
                             "else cast(1 + bench_pick(p, 'method', 4) as varchar) end",
        "created_at": "bench_ts(paid_on, p, 'payment created')",
        "updated_at": "bench_ts(paid_on, p, 'payment created')",
        "_fivetran_deleted": "'false'",
        "_fivetran_synced": _synced("p"),
    }),
    "payment_line": _RawRows(
        "(select payments.p, allocations.line_index, allocations.i, allocations.amount, "
        "null as k, payments.minor_units, payments.unit from bench_allocations as allocations "
        "join bench_payments as payments using (payment_key) "
        "union all select payments.p, 1, null, memos.amount, memos.k, payments.minor_units, "
        "payments.unit from bench_credit_memos as memos "
        "join bench_payments as payments using (payment_key))", "p, line_index", {
            "payment_id": "cast(2000000 + p as varchar)",
            "index": "cast(line_index as varchar)",
            "amount": "bench_money(amount, minor_units, unit)",
            "invoice_id": "cast(1000 + i as varchar)",
            "credit_memo_id": "cast(3000000 + k as varchar)",
            "_fivetran_synced": _synced("p"),
        }),
    "credit_memo": _RawRows(
        "(select memos.*, customers.currency, customers.minor_units, customers.unit, "
        "customers.rate_micro from bench_credit_memos as memos "
        "join bench_customers as customers using (n))", "k", {
            "id": "cast(3000000 + k as varchar)",
            "doc_number": "'CM-' || (10000 + k)",
            "customer_id": "cast(n as varchar)",
            "transaction_date": "strftime(applied_on, '%Y-%m-%d')",
            "currency_id": "currency",
            "exchange_rate": "bench_money(rate_micro, 6, 1000000)",
            "total_amount": "bench_money(amount, minor_units, unit)",
            "total_tax": "bench_money(tax, minor_units, unit)",
            "balance": "bench_money(0, minor_units, unit)",
            "remaining_credit": "bench_money(0, minor_units, unit)",
            "customer_memo": "'Credit for invoice ' || (100000 + i)",
            "created_at": "bench_ts(applied_on, k, 'credit created')",
            "updated_at": "bench_ts(applied_on, k, 'credit created')",
            "_fivetran_deleted": "'false'",
            "_fivetran_synced": _synced("k"),
        }),
}

_GENERATED: dict[str, dict[str, _RawRows]] = {
    "salesforce": _SALESFORCE, "quickbooks": _QUICKBOOKS,
}


def _create_raw_table(conn: duckdb.DuckDBPyConnection, table: RawTable,
                      rows: _RawRows | None) -> None:
    """One raw table with the catalog's columns, all text, then the lineage columns."""
    conn.execute(f"create schema if not exists {table.schema}")
    values = rows.values if rows else {}
    unknown = sorted(set(values) - set(table.columns))
    if unknown:
        raise ValueError(
            f"bench generator writes {unknown} to {table.source}.{table.name}, which the "
            "catalog in q2c/sources/tables does not list; update bench/dbt_raw_layer.py"
        )
    select = ", ".join(
        f'cast({values.get(column, "null")} as varchar) as "{column}"'
        for column in table.columns
    )
    source_file = f"bench_dbt/{table.source}/{table.name}.csv"
    if rows is None:
        conn.execute(
            f"create or replace table {table.relation} as select {select}, "
            "cast(? as varchar) as _q2c_source_file, cast(null as integer) as _q2c_source_row, "
            "cast(? as timestamp) as _q2c_loaded_at limit 0", [source_file, LOADED_AT],
        )
        return
    conn.execute(
        f"create or replace table {table.relation} as select {select}, "
        "cast(? as varchar) as _q2c_source_file, "
        f"cast(row_number() over (order by {rows.order_by}) + 1 as integer) "
        "as _q2c_source_row, cast(? as timestamp) as _q2c_loaded_at "
        f"from {rows.relation} order by {rows.order_by}",
        [source_file, LOADED_AT],
    )


def generate(path: Path, sizes: Sizes, as_of: dt.date = AS_OF) -> dict[str, int]:
    """Write a fresh warehouse at `path`; return the row count of each generated raw table.

    Sources other than the default ones get their raw tables empty, and q2c's own delivery
    and review tables exist empty, so every dbt source the project may read is there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with duckdb.connect(str(path)) as conn:
        conn.execute("set enable_progress_bar = false")
        for name, value in (
            ("bench_as_of", as_of), ("bench_invoices", sizes.invoices),
            ("bench_accounts", sizes.accounts), ("bench_users", sizes.users),
            ("bench_opportunities", sizes.opportunities), ("bench_cases", sizes.cases),
            ("bench_payments", sizes.payments),
        ):
            conn.execute(f"set variable {name} = ?", [value])
        for statement in (*_HELPERS, *_PLAN):
            conn.execute(statement)
        for table in RAW_TABLES:
            rows = _GENERATED.get(table.source, {}).get(table.name)
            if table.source in DEFAULT_SOURCES and rows is None:
                raise ValueError(
                    f"bench generator has no rows for {table.source}.{table.name}; "
                    "add them to bench/dbt_raw_layer.py"
                )
            _create_raw_table(conn, table, rows)
            if rows is not None:
                counts[f"{table.source}.{table.name}"] = conn.execute(
                    f"select count(*) from {table.relation}"
                ).fetchone()[0]
        conn.execute(DELIVERY_WAREHOUSE_DDL)
        ensure_review_warehouse_tables(conn)
    return counts
