"""newsletter.sources: (to describe)."""
