"""Clients for the outside services the agents talk to, one module per service."""
