"""The shop's API: a tiny service for Countersign's SRE demo (see ../README.md)."""
