{{ config(alias='kpi_collections_worklist') }}

{{ q2c_published_columns(ref('kpi_collections_worklist')) }}
