"""q2c: quote-to-cash invoice platform. The domain library; it never imports Dagster."""
