"""Provisioning runs and their step ledger."""
