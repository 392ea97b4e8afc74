"""The job service: SQLite store, queue, engine subprocesses, progress, install."""
