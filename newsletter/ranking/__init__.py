"""Each reader's papers in the order they care about: features of every paper's title and
abstract (`features`, made once per paper), a linear model per reader trained on what they
saved, rated and seeded (`model`), and the daily step that stores each reader's order of a
digest's papers (`step`), read when their email is assembled.

May import `store`, `models`, `db`, `config` and the bottom modules; never `digest`'s callers
(`render`, `message`, `delivery`, `web`, `cli`).
"""

SCHEME = "hash18-uni-bi-v1"
"""Names how `features` makes a paper's stored features (hashing, columns, n-grams, text
cleaning): a change to any of them is a new name, and the papers' features are made again.
Here, not in `features`, so that naming it loads no numpy, scipy or scikit-learn."""
