"""newsletter.digest.content: (to describe)."""
