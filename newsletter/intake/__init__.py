"""What people type or import, checked before anything stores it: topics (`topics`: a topic's
keywords, categories or raw query, and topic files in TOML or YAML) and subscribers
(`subscribers`: addresses, languages, formats, followed authors, the rows of a CSV import;
`rhythm`: cadence, weekday, hour and time zone, and the clock that says when a reader is due),
webhooks (`webhooks`: their URL, events and secret, and the envelope of an event) and API
tokens (`api_tokens`: their names and scopes, the token and what is kept of it).

A bad entry is rejected with what is wrong and where (file, topic, line), never half-stored.
May import the bottom modules (`authors`, `config`, `errors`, `languages`, `models`, `schedules`,
`userinput`) only.
"""
