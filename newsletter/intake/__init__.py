"""What people type or import, checked before anything stores it: topics (`topics`: a topic's
keywords, categories or raw query, and topic files in TOML or YAML) and subscribers
(`subscribers`: addresses, languages, formats, followed authors, the rows of a CSV import).

A bad entry is rejected with what is wrong and where (file, topic, line), never half-stored.
May import the bottom modules (`authors`, `config`, `errors`, `languages`, `userinput`) only.
"""
