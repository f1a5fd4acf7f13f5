"""Data quality checks that stand between the warehouse and invoice documents.

Each file in `quality/suites/` checks one table with Great Expectations; `quality.runner`
runs a suite, records the results in `q2c_ops` and answers which invoices are held.
Importing this package does not import Great Expectations; running a suite does.
"""
