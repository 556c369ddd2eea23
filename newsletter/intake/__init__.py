"""newsletter.intake: (to describe)."""
