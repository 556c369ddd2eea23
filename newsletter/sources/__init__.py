"""Where papers and their code come from: arXiv's API (`arxiv`, asked with a topic's query
from `arxiv_query`, answering `papers.FetchedPaper`s), the Hugging Face papers API
(`huggingface`), and links to code found in a paper's own text (`codelinks`).

Each returns plain data (`FetchedPaper`, URLs) and knows nothing of the database; a source that
misbehaves raises one of its own errors with a readable reason. May import the bottom modules
(`config`, `errors`, `retrying`, `metrics`, `textfmt`, `userinput`) only.
"""
