"""mlstack's Feast adapter: the FeatureStore role. This package imports no Feast itself."""
