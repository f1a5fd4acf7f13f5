"""Source connectors: landed tables in Fivetran's schema, file drops, API pulls."""
