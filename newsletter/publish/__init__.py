"""newsletter.publish: (to describe)."""
