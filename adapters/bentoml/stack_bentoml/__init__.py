"""mlstack's Server role on BentoML: registry versions served behind one routed endpoint."""
