"""The raw tables of every source q2c reads, one module per source."""
