"""The MIME message: one email as headers and parts (`compose`), the addresses in it as mail
carries them (`addresses`), and a mail merge (`mail_merge`): a segment's message encoded once,
each recipient's bytes made from it by substitution. It is handed finished text (subject, the
HTML and text parts, links) and gives bytes; it may import `config`, `errors` and `tokens`,
never `delivery`, `render` or `store`: rendering happens before it, sending after it.
"""
