"""A self-hosted arXiv daily digest: new papers per topic, one email per subscriber."""

__version__ = "0.1.0"
