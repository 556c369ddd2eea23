"""newsletter.render.email: (to describe)."""
