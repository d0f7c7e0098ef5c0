"""A workspace's connection to Polar: tokens, organization, webhook endpoint, product mappings."""
