"""What a digest holds and who receives which body: one day's window of papers, made into the
content every reader sees. `content` has the plain frozen values (`PaperItem`, `TopicSection`,
`DigestContent`, translations) and `assemble`, with no database access; `window` finds or opens
the day's digest; `edition` reads a digest once under `EditionOptions` and answers "the content
of these topics in this language" for the emails, the web pages and the previews; `segments`
streams the readers once and groups them by (topics, language). It reads and writes only
through `store`, and may import `store`, `models`, `config`, `textfmt`, `languages`, `intake`
and `errors`; never `render`, `delivery`, `translate`, `web`, `cli`, `worker` or `daily`, which
build on it.
"""
