"""The customer portal: invoices, documents, disputes and payment for a signed-in customer.

Its records (sign-ins, sessions, links, disputes, events) live in the operational store
beside the outbox; the nightly copies the events and disputes into the warehouse
(`q2c_ops`), where dbt builds the dispute and self-service KPIs from them.
"""
