"""Templates → HTML and text: the digest email (its HTML and plain-text parts, subject and
preheader, kept under Gmail's clipping size), the double opt-in's confirmation email, the
digest's web version and the web app's pages; and previews of what a subscriber would get.
`environment` is the Jinja2 setup and its filters, `digest_context` what every digest template
is given, `fit` the size ladder, `cards` the paper cards made once per process, `mjml` and
`inline` MJML → HTML with its styles inlined, `email` the email body, `pages` the web pages,
`preview` the previews. It may import `digest`, `textfmt`, `languages`, `tokens`, `config`,
`errors`, `models` and `sources.codelinks` (and `store`'s reads, for previews); never `store`'s
writes, `delivery`, `web`, `cli`, `worker` or `daily`: they call it, not the other way round.
"""
