"""Reading log files: tailing from a checkpoint, parsers, traceback grouping. No database here.

- `tail`: which files to read from where (rotation, truncation), complete lines within caps;
- `assemble`: lines into events (one line, or a record with its multi-line traceback);
- `nginx`, `pylog`, `tracebacks`: the parsers;
- `fingerprint`: versioned grouping keys;
- `classify`: parsed events into what the services store (requests, signals for incidents).

Everything read from a log is untrusted text: it is parsed and kept as data, never interpreted.
"""
