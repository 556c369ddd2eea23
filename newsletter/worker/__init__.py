"""newsletter.worker: (to describe)."""
