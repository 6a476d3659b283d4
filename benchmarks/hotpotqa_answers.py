"""HotpotQA (500 dev-distractor-v1 questions, all paragraphs pooled): grounded answers against peers.

    python benchmarks/hotpotqa_answers.py [--limit N] [--configs a,b,...] [--top-k K] [--rerank] [--no-append]

Configurations, each on the same questions in this one run:
  closed-0.5b     qwen2.5-0.5b with no evidence (closed book), asked for the same JSON short answer
  closed-1.5b     the same with qwen2.5-1.5b
  pf-0.5b         pilotfish AnswerPipeline, hybrid retrieval (cross-encoder reranked with --rerank),
                  style="short" (grammar-enforced JSON answer and sources), qwen2.5-0.5b
  pf-1.5b         the same with qwen2.5-1.5b
  pfquoted-0.5b   pf-0.5b with style="quoted" (the evidence sentence first, then the short answer)
  pfquoted-1.5b   the same with qwen2.5-1.5b
  langchain-0.5b  LangChain's RAG tutorial chain (FAISS + the same MiniLM, k=4, the tutorial's prompt)
                  with the same qwen2.5-0.5b GGUF through langchain-community's ChatLlamaCpp
Reports SQuAD-normalised EM and F1 (max over gold answers, citations stripped), supporting-paragraph
recall of the evidence, p50/p95 seconds per answer, tokens, and pipeline overhead (answer time not
spent in the LLM). Each configuration's answers go to benchmarks/out/hotpotqa500/answers-CONFIG.jsonl,
which the other hotpotqa_*.py scripts read; rows are kept as they come in answers-CONFIG.partial.jsonl,
so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from shared import (  # noqa: E402
    HOTPOT_OUT,
    QA_SETS,
    answer_scores,
    append_history,
    closed_book,
    markdown_table,
    qa_set,
    support_recall,
    write_corpus,
)

OUT = HOTPOT_OUT
TUTORIAL_PROMPT = ("You are an assistant for question-answering tasks. Use the following pieces of retrieved "
                   "context to answer the question. If you don't know the answer, just say that you don't know. "
                   "Use three sentences maximum and keep the answer concise.\nQuestion: {question} \n"
                   "Context: {context} \nAnswer:")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--configs", default="closed-0.5b,closed-1.5b,pf-0.5b,pf-1.5b,langchain-0.5b")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--rerank", action="store_true")
    parser.add_argument("--no-append", action="store_true")
    args = parser.parse_args()

    from pilotfish.answer import build
    from pilotfish.knowledge.base import KnowledgeBase
    from pilotfish.llms.llamacpp import LlamaCppLLM

    data = qa_set("hotpotqa")
    corpus_path = write_corpus(data, OUT)
    questions = data.items[: args.limit]
    kb = KnowledgeBase.open(OUT / "kb", create=True)
    report = kb.ingest([corpus_path])
    print(f"knowledge base: {report.total_documents} paragraphs, {report.total_chunks} chunks", flush=True)

    llms = {"0.5b": LlamaCppLLM(model="qwen2.5-0.5b"), "1.5b": LlamaCppLLM(model="qwen2.5-1.5b")}
    results: dict[str, list[dict]] = {}
    for config in args.configs.split(","):
        rows = []
        if config.startswith("langchain"):
            rows = run_langchain(questions, llms["0.5b"], args.top_k)
            answer_one = None
        elif config.startswith("closed"):
            answer_one = closed_book(llms[config.split("-")[1]])
        else:
            quoted = config.startswith("pfquoted")
            size = config.split("-")[1]
            spec = {"answer": {"llm": f"qwen2.5-{size}", "style": "quoted" if quoted else "short",
                               "max_tokens": 160 if quoted else 64},
                    "retrieve": {"top_k": args.top_k, "rerank": args.rerank}}
            pipeline = build(spec, kb, llms={f"qwen2.5-{size}": llms[size]})
            answer_one = pipeline_answer(pipeline)
        if answer_one is not None:
            rows = answer_all(questions, answer_one, OUT / f"answers-{config}.partial.jsonl", args)
        for row, item in zip(rows, questions):
            row["em"], row["f1"] = answer_scores(row["text"], item.answers)
            row["sp_recall"] = support_recall(item.gold_doc_ids, row["evidence"])
        results[config] = rows
        (OUT / f"answers-{config}.jsonl").write_text("".join(
            json.dumps({"question": i.question, "gold": i.answers[0], "prediction": r["text"], "f1": r["f1"],
                        "seconds": r["seconds"], "evidence": r["evidence"]}) + "\n"
            for i, r in zip(questions, rows)))
        summary = summarise(rows)
        print(config, json.dumps(summary), flush=True)
    table = markdown_table(("configuration", "EM", "F1", f"support recall@{args.top_k}", "p50 s", "p95 s",
                            "tokens in/out", "overhead"),
                           [(c, *summarise(r).values()) for c, r in results.items()])
    print(table)
    if not args.no_append:
        reranked = " reranked by the cross-encoder (first-stage depth 20, batches of 4)" if args.rerank else ""
        append_history(f"HotpotQA grounded answers, {len(questions)} questions (hotpotqa_answers.py)", table,
                       f"pilotfish: hybrid top-{args.top_k}{reranked}, "
                       "short answer style (pfquoted: quoted style), evidence listed in each model's registry "
                       "passage order (qwen2.5-0.5b: best passage last). EM/F1 by the SQuAD v1.1 rules against the "
                       "gold answer, citations stripped. Overhead: the share of answer time not spent inside the LLM "
                       f"call. Data: {QA_SETS['hotpotqa'].path}.", area="Grounded answers")


def answer_all(questions: list, answer_one: object, partial: Path, args: argparse.Namespace) -> list[dict]:
    """Answer every question, keeping each row in `partial` as it comes, so a killed run resumes there
    (rows count only when written for the same questions, top-k and rerank setting)."""
    setting = {"top_k": args.top_k, "rerank": args.rerank}
    rows = []
    for line in partial.open() if partial.is_file() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:  # the torn last line of a killed run
            break
    rows = [r for r, item in zip(rows, questions) if r.get("question") == item.question and r.get("setting") == setting]
    if len(rows) < len(questions):
        answer_one("Which city is the capital of France?")  # warm-up: loads are not answer time
    with partial.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        for item in questions[len(rows):]:
            start = time.perf_counter()
            text, evidence, usage = answer_one(item.question)
            row = {"question": item.question, "setting": setting, "text": text, "evidence": evidence,
                   "seconds": time.perf_counter() - start, "llm_seconds": usage.seconds,
                   "tokens_in": usage.prompt_tokens, "tokens_out": usage.completion_tokens}
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            rows.append(row)
    return rows


def pipeline_answer(pipeline: object) -> object:
    def answer(question: str) -> tuple[str, list[str], object]:
        result = pipeline.run(question)
        return result.text, [p.doc_id for p in result.evidence], result.usage
    return answer


def summarise(rows: list[dict]) -> dict[str, str]:
    seconds = sorted(r["seconds"] for r in rows)
    p95 = seconds[min(len(seconds) - 1, int(0.95 * len(seconds)))]
    overhead = 1 - sum(r["llm_seconds"] for r in rows) / sum(seconds) if sum(seconds) else 0
    def mean(key: str) -> float:
        return statistics.mean(r[key] for r in rows)

    return {"em": f"{mean('em'):.3f}", "f1": f"{mean('f1'):.3f}", "sp": f"{mean('sp_recall'):.3f}",
            "p50": f"{statistics.median(seconds):.1f}", "p95": f"{p95:.1f}",
            "tokens": (f"{mean('tokens_in'):.0f}/{mean('tokens_out'):.0f}"
                       if any(r["tokens_in"] for r in rows) else "not reported"),
            "overhead": f"{overhead:.1%}"}


def run_langchain(questions: list, llm: object, k: int) -> list[dict]:
    """LangChain's RAG tutorial: vector store retriever, the tutorial prompt, a chat model, a parser."""
    from langchain_community.chat_models import ChatLlamaCpp
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from pilotfish.llms.llamacpp import default_threads
    from pilotfish.models import model_path

    docs = [json.loads(line) for line in (OUT / "paragraphs.jsonl").open()]
    embeddings = HuggingFaceEmbeddings(model_name=str(model_path("minilm-l6")))
    store = FAISS.from_texts([f"{d['title']}\n{d['text']}" for d in docs], embeddings,
                             metadatas=[{"title": d["title"]} for d in docs])
    retriever = store.as_retriever(search_kwargs={"k": k})
    chat = ChatLlamaCpp(model_path=str(model_path("qwen2.5-0.5b")), n_ctx=4096, n_threads=default_threads(),
                        temperature=0.0, max_tokens=48, verbose=False)
    prompt = ChatPromptTemplate.from_template(TUTORIAL_PROMPT)
    found = retriever.invoke("Which city is the capital of France?")  # warm-up, as for the other configurations
    (prompt | chat).invoke({"context": found[0].page_content, "question": "Which city is the capital of France?"})
    rows = []
    for item in questions:
        start = time.perf_counter()
        found = retriever.invoke(item.question)
        context = "\n\n".join(d.page_content for d in found)
        t_llm = time.perf_counter()
        message = (prompt | chat).invoke({"context": context, "question": item.question})
        llm_seconds = time.perf_counter() - t_llm
        usage = getattr(message, "usage_metadata", None) or {}
        rows.append({"text": StrOutputParser().invoke(message), "evidence": [d.metadata["title"] for d in found],
                     "seconds": time.perf_counter() - start, "llm_seconds": llm_seconds,
                     "tokens_in": usage.get("input_tokens", 0), "tokens_out": usage.get("output_tokens", 0)})
    _ = RunnablePassthrough  # the tutorial's chain shape; steps are timed one by one here
    return rows


if __name__ == "__main__":
    main()
