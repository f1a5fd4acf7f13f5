"""Payments: gateway events in, cash applied to invoices, the nightly reconciliation."""
