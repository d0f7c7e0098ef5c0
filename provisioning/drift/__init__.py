"""Drift: a product or benefit the platform manages, changed at Polar away from the catalog."""
