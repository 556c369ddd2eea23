"""Delivering a digest exactly once per subscriber, whatever crashes: the batch loop
(`deliverer`) claims delivery rows under a lease (`claims`), builds each row's message
(`messages`) and records the outcomes (`outcomes`); the transports carry the final
bytes (`outgoing` is their interface; `transports` picks one from the settings; `smtp`,
`outbox`, `dkim` and `pacing` are the parts; chat channels' rows are posted by `chat`, their
posts made by `chat_messages`), the journal of accepted messages (`journal`), and
what a failed delivery does to a subscriber (`bounces`).

May import `message`, `render`, `digest`, `store` and the bottom modules; never `inbound`,
`daily`, `worker`, `web` or `cli`.
"""
