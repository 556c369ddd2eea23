"""newsletter.message: (to describe)."""
