"""Poller: claim unprocessed events, analyse new head commits, write insights."""
