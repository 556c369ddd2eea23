"""The long-running worker: the Huey queue and its tasks (`tasks`), the consumer that heals
itself (`consumer`), waiting out an outage of Redis, the database or SMTP (`outages`),
heartbeats (`heartbeat`) and the one-fetch-at-a-time lock (`fetchlock`).

May import `daily`, `inbound`, `delivery` and everything below; never `web` or `cli`.
"""
