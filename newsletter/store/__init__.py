"""Every query and write, named, one module per kind of record. Callers pass a Session (see
`db.session_scope`) and read `store.x` whatever module x lives in.

- `topics`, `papers`: what is fetched (topics and the papers linked to them);
- `subscribers`, `subscriptions`: who reads (the people, their topics and preferences);
- `subscriber_edits`, `subscriber_import`: what the operator does to them (edits, CSV imports),
  from the CLI or the API;
- `follows`: the authors each reader follows, and the papers a day brought;
- `digests`, `deliveries`: what is sent (one digest a day, one delivery row per reader);
- `translations`, `summaries`, `received_mail`: translated abstracts, one-sentence summaries
  and mail that came back;
- `ranking`: papers' features, readers' signal and their order of each digest's papers;
- `reading`: what readers saved, rated and named as seeds (their library, their signal);
- `api_tokens`: the JSON API's tokens (their hashes and scopes);
- `transactions`: one item written in its own savepoint;
- `copy`: PostgreSQL's COPY with the server's answer read later (the import's tables);
- `webhooks`: the operator's endpoints and the events queued for each (an outbox).

The store decides nothing: policies (when a bounce bounces an address, what a digest holds)
live with the code that applies them. It may import `models`, `errors`, `schedules` (a
rhythm's record) and `intake` only.

A module of the store is imported when one of its names is first read (`store.x` or
`from newsletter.store import x`), not when the package is: between them they import the
intake's parsers (YAML, TOML, e-mail addresses) and every query of the program, and a command
such as `newsletter subscribers list` needs a few of them (see bench/cli_bench.py).
"""

from importlib import import_module

HOMES = {
    "api_tokens": (
        "create_api_token",
        "list_api_tokens",
        "note_api_token_use",
        "revoke_api_token",
        "usable_api_token",
    ),
    "deliveries": (
        "ChannelTarget",
        "ClaimedDelivery",
        "add_deliveries",
        "channel_targets",
        "claim_deliveries",
        "claim_delivery_rows",
        "claimed_rows",
        "claims_in_flight",
        "count_unfinished",
        "defer_delivery",
        "deliveries_of",
        "delivery_by_id",
        "delivery_counts",
        "failed_deliveries",
        "finish_delivery",
        "finish_sent",
        "next_due_at",
        "note_delivery_progress",
        "release_deliveries",
        "renew_claims",
        "sent_message_to",
        "skip_deliveries",
    ),
    "digests": (
        "DigestStamp",
        "add_digest",
        "daily_digests_ending_after",
        "digest_by_id",
        "digest_ids_since",
        "digest_on",
        "digest_stamp",
        "first_day_after",
        "latest_digest_before",
        "latest_ready_daily",
        "list_digests",
        "lock_digest",
        "mark_ready",
        "open_span",
        "span_between",
        "span_by_id",
    ),
    "follows": (
        "add_follows",
        "follow_keys_of",
        "follow_names_of",
        "followed_names",
        "follows_of",
        "papers_first_seen_between",
        "remove_follows",
        "set_follows",
    ),
    "papers": (
        "code_released_between",
        "count_papers_between",
        "link_paper",
        "linked_arxiv_ids",
        "papers_by_arxiv_ids",
        "papers_due_code_check",
        "papers_linked_between",
        "papers_of_topics_between",
        "recent_papers",
        "record_code_check",
        "search_papers",
        "topic_counts_between",
        "topic_names_of",
        "upsert_paper",
    ),
    "ranking": (
        "NEGATIVE",
        "POSITIVE",
        "count_ranking_readers",
        "delete_rankings_before",
        "features_of",
        "features_seen_between",
        "has_rankings",
        "paper_dates_first_seen_between",
        "papers_without_features",
        "put_features",
        "put_rankings",
        "ranked_reader_ids",
        "rankings_of",
        "reader_signals",
        "readers_with_signal",
        "topic_ids_of",
    ),
    "reading": (
        "library_of",
        "mark_seeds",
        "paper_by_arxiv_id",
        "papers_by_dois",
        "rate_paper",
        "reader_examples",
        "reader_paper",
        "reader_signal_counts",
        "save_paper",
        "saved_papers",
        "unsave_paper",
    ),
    "received_mail": (
        "mail_was_read",
        "remember_mail",
    ),
    "schedules": (
        "DueReader",
        "Slot",
        "due_readers",
        "give_window",
        "reader_id_parts",
        "reschedule",
        "upcoming_slots",
    ),
    "subscriber_edits": (
        "apply_subscriber_edit",
        "subscriber_row",
        "subscriber_row_of",
        "subscriber_rows",
    ),
    "subscriber_import": ("import_subscribers",),
    "subscribers": (
        "IN_LIST_LIMIT",
        "STREAM_CHUNK",
        "add_channel",
        "add_subscriber",
        "count_hard_failure",
        "events_of",
        "find_channel",
        "find_subscriber",
        "get_channel",
        "get_subscriber",
        "import_subscriber",
        "list_subscribers",
        "log_event",
        "purge_subscriber",
        "remove_subscriber",
        "schedule_of",
        "set_schedule",
        "set_status",
        "subscriber_by_id",
        "subscriber_by_public_id",
        "subscriber_emails",
        "subscribers_page",
        "unsubscribe_public_id",
    ),
    "subscriptions": (
        "change_preferences",
        "confirm_subscription",
        "confirmation_matches",
        "edit_subscriber",
        "milliseconds",
        "pause_subscriber",
        "release_confirmation",
        "request_subscription",
        "resubscribe",
        "subscriber_topic_rows",
        "topics_by_subscriber_language",
    ),
    "summaries": (
        "save_summary",
        "summaries_of",
    ),
    "topics": (
        "add_topic",
        "apply_topic_spec",
        "get_topic",
        "get_topics",
        "known_topics_text",
        "list_topics",
        "remove_topic",
        "set_fetch_incomplete",
        "topic_by_slug",
        "topic_paper_counts",
        "topic_rows",
        "topic_subscriber_counts",
        "topics_by_ids",
        "topics_by_slugs",
        "upsert_topic",
    ),
    "transactions": ("in_savepoint",),
    "translations": (
        "papers_missing_translation",
        "save_translation",
        "translations_of",
    ),
    "webhooks": (
        "DueWebhook",
        "WebhookCounts",
        "add_webhook",
        "claim_webhook_delivery",
        "has_due_webhooks",
        "list_webhooks",
        "listeners",
        "queue_event",
        "recent_webhook_deliveries",
        "record_webhook_attempt",
        "remove_webhook",
        "retry_webhook_deliveries",
        "webhook_by_id",
        "webhook_counts",
    ),
}
"""Each module of the store, and the names read from it as `store.<name>`."""

_HOME_OF = {name: module for module, names in HOMES.items() for name in names}

__all__ = sorted(_HOME_OF)


def __getattr__(name: str) -> object:
    # Called only for a name not yet in the package's namespace: the first read of each.
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
