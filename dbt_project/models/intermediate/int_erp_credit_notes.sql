{{ q2c_union_conformed('erp_credit_notes') }}
