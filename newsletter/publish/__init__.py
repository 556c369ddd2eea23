"""The papers published beyond email: the seed-style Markdown page and its JSON (`export`), and
Atom feeds of what the digests carried (`feeds`).

May import `digest`, `store`, `textfmt` and the bottom modules; never `delivery`, `web` or `cli`.
"""
