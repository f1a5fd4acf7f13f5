{{ q2c_union_conformed('crm_interactions') }}
