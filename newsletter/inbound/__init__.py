"""newsletter.inbound: (to describe)."""
