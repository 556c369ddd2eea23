"""Delivering a digest exactly once per subscriber, whatever crashes: claiming delivery rows
under a lease and recording their outcomes (`deliverer`), the transports that carry the final
bytes (`outgoing` is their interface; `transports` picks one from the settings; `smtp`,
`outbox`, `dkim` and `pacing` are the parts), the journal of accepted messages (`journal`), and
what a failed delivery does to a subscriber (`bounces`).

May import `message`, `render`, `digest`, `store` and the bottom modules; never `inbound`,
`daily`, `worker`, `web` or `cli`.
"""
