"""E-invoices: the EN 16931 model, UBL and CII syntaxes, validation, Factur-X."""
