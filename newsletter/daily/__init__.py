"""newsletter.daily: (to describe)."""
