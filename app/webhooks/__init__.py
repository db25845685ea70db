"""Outbound webhooks to HTTP users: signed as Standard Webhooks specifies, delivered from an outbox."""
