"""Collections: the dunning policy, owner holds and the reminders sent through the outbox.

The warehouse decides what is due (`kpi.mart_dunning_actions`: the stage each open invoice
has reached and why it is suppressed, from the stages of the policy in
`dbt_project/seeds/dunning_stages.csv`). This package reads the policy
(`q2c.collections.policy`), keeps the account owners' holds (`q2c.collections.holds`),
renders each due reminder through the governed templates with a statement of open items
(`q2c.collections.render`) and queues it in the delivery outbox, keyed by invoice and stage
so it goes out once (`q2c.collections.reminders`).
"""
