"""Ingest: verified GitHub deliveries into durable state, one transaction each."""
