{{ q2c_union_conformed('erp_invoice_tax_lines') }}
