"""Rebuild examples/docs from the public HotpotQA sample (Wikipedia paragraphs, CC BY-SA 4.0).

    python examples/build_example_docs.py ../shared/benchmarks/hotpotqa/dev_distractor_300.jsonl.gz

Writes one file per Wikipedia article for the first 12 questions, in mixed formats (.md, .txt, .html)
so the demo exercises several loaders, plus questions.jsonl with the questions and gold answers. The
300-item file lacks supporting paragraphs for many questions (benchmarks use the 500-item v1 sample);
the demo keeps it so that some questions cannot be answered from the documents.
"""

from __future__ import annotations

import ast
import gzip
import html
import json
import re
import sys
from pathlib import Path

N_QUESTIONS = 12


def main(source: str) -> None:
    target = Path(__file__).parent / "docs"
    target.mkdir(exist_ok=True)
    articles: dict[str, list[str]] = {}
    questions = []
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n == N_QUESTIONS:
                break
            item = json.loads(line)
            context = item["context"]
            for title, sentences in (ast.literal_eval(context) if isinstance(context, str) else context):
                articles.setdefault(title, ["".join(sentences).strip()])
            questions.append({"id": item["_id"], "question": item["question"], "answers": [item["answer"]]})
    for i, (title, paragraphs) in enumerate(sorted(articles.items())):
        slug = re.sub(r"[^A-Za-z0-9]+", "_", title).strip("_")[:60] or f"article_{i}"
        body = "\n\n".join(paragraphs)
        if i % 3 == 0:
            (target / f"{slug}.md").write_text(f"# {title}\n\n{body}\n", encoding="utf-8")
        elif i % 3 == 1:
            (target / f"{slug}.txt").write_text(f"{title}\n\n{body}\n", encoding="utf-8")
        else:
            (target / f"{slug}.html").write_text(
                f"<html><head><title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
                f"<p>{html.escape(body)}</p></body></html>\n", encoding="utf-8")
    with (Path(__file__).parent / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for q in questions:
            fh.write(json.dumps(q) + "\n")
    print(f"wrote {len(articles)} articles to {target}")


if __name__ == "__main__":
    main(sys.argv[1])
