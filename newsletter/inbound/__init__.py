"""The mail that comes back to the digest's address: reading mailboxes within limits
(`mailboxes`), delivery status reports (`dsn`), unsubscribe requests (`unsubscribes`), and
acting on each message once (`reader`).

One unreadable message is listed and the read goes on. May import `delivery.bounces` (what a
bounce does), `store` and the bottom modules; never `daily`, `worker`, `web` or `cli`.
"""
