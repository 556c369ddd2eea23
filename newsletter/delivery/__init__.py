"""newsletter.delivery.deliverer: (to describe)."""
