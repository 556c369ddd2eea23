"""The daily job's steps, shared by the CLI and the worker: fetching each topic's new papers
(`fetch`), looking for code links that appeared since (`code_check`), and building and sending
the day's digest (`send`); and, outside the day's run, seeding a reader's ranking with papers
they already know (`seeds`).

Each step takes settings and plain values, opens its own sessions, and is safe to run twice.
May import everything below it (`delivery`, `translate`, `digest`, `store`, `sources`, ...);
never `worker`, `web` or `cli`.
"""
