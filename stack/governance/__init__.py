"""Governance: promotion gates, approvals, what served when, model cards, the inventory."""
