"""Vendor SDKs, one module each; nothing else in support imports them."""
